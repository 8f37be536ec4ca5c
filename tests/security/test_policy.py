"""Issues 12 and 16: one validator of a Service, K8X's security policy, Pod Security.

The same bad service directory gives the same (field path, rule) through the
console form, ``k8x_apply --dry-run`` and a git sync; what slips past K8X is
still refused by Pod Security admission; plain services run under the
restricted defaults."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client
from kubernetes import client

from k8x_core import kube
from k8x_core.models import Project, Run, RunStatus, Service, TriggerKind, run_job_name
from k8x_core.runs import launch, validation
from k8x_core.runs.defaults import project_placement
from k8x_core.runs.logs import run_log_text
from k8x_core.runs.namespaces import LIMITS_NAME, QUOTA_NAME, project_namespace_ensure
from k8x_core.runs.security import project_uid
from k8x_core.watch.watcher import Watcher
from tests.cluster_fixtures import admin_job_exists
from tests.k8x_core.catalog.conftest import GitServer, service_write
from tests.security.conftest import SERVICE, via_apply, via_console, via_git

pytestmark = pytest.mark.cluster

BUSYBOX = "localhost:5000/k8x/busybox:1"
POD = "spec.template.spec"
C0 = f"{POD}.containers[0]"

BASE: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "spec": {"template": {"spec": {"containers": [{"name": "main", "image": BUSYBOX, "command": ["true"]}]}}},
}


def job_with(**pod_spec: Any) -> dict[str, Any]:
    job = copy.deepcopy(BASE)
    job["spec"]["template"]["spec"].update(pod_spec)
    return job


def container_with(**fields: Any) -> dict[str, Any]:
    job = copy.deepcopy(BASE)
    job["spec"]["template"]["spec"]["containers"][0].update(fields)
    return job


def secret_volume(source: dict[str, Any]) -> dict[str, Any]:
    job = job_with(volumes=[{"name": "v", **source}])
    job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/v"}]
    return job


def as_pod(job: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": job["spec"]["template"]["spec"]}


FOREIGN = "k8x-svc-someone-else"

# (id, Job template, the field path and rule each entry point must name)
REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "privileged",
        container_with(securityContext={"privileged": True}),
        f"{C0}.securityContext.privileged",
        "privileged",
    ),
    (
        "privileged-init-container",
        job_with(initContainers=[{"name": "i", "image": BUSYBOX, "securityContext": {"privileged": True}}]),
        f"{POD}.initContainers[0].securityContext.privileged",
        "privileged",
    ),
    (
        "privileged-written-as-a-pod",
        as_pod(container_with(securityContext={"privileged": True})),
        f"{C0}.securityContext.privileged",
        "privileged",
    ),
    ("hostNetwork", job_with(hostNetwork=True), f"{POD}.hostNetwork", "host-namespaces"),
    ("hostPID", job_with(hostPID=True), f"{POD}.hostPID", "host-namespaces"),
    ("hostIPC", job_with(hostIPC=True), f"{POD}.hostIPC", "host-namespaces"),
    ("hostPath", secret_volume({"hostPath": {"path": "/"}}), f"{POD}.volumes[0].hostPath", "host-path"),
    (
        "capabilities-add",
        container_with(securityContext={"capabilities": {"add": ["NET_ADMIN"]}}),
        f"{C0}.securityContext.capabilities.add",
        "capabilities-add",
    ),
    (
        "procMount",
        container_with(securityContext={"procMount": "Unmasked"}),
        f"{C0}.securityContext.procMount",
        "proc-mount",
    ),
    ("nodeName", job_with(nodeName="k8x-node"), f"{POD}.nodeName", "node-name"),
    ("serviceAccountName", job_with(serviceAccountName="builder"), f"{POD}.serviceAccountName", "service-account"),
    ("serviceAccount", job_with(serviceAccount="builder"), f"{POD}.serviceAccount", "service-account"),
    (
        "automountServiceAccountToken",
        job_with(automountServiceAccountToken=True),
        f"{POD}.automountServiceAccountToken",
        "service-account-token",
    ),
    (
        "projected-serviceAccountToken",
        secret_volume({"projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}),
        f"{POD}.volumes[0].projected.sources[0].serviceAccountToken",
        "service-account-token",
    ),
    (
        "secret-volume",
        secret_volume({"secret": {"secretName": FOREIGN}}),
        f"{POD}.volumes[0].secret.secretName",
        "foreign-secret",
    ),
    (
        "projected-secret",
        secret_volume({"projected": {"sources": [{"secret": {"name": FOREIGN}}]}}),
        f"{POD}.volumes[0].projected.sources[0].secret.name",
        "foreign-secret",
    ),
    (
        "envFrom-secret",
        container_with(envFrom=[{"secretRef": {"name": FOREIGN}}]),
        f"{C0}.envFrom[0].secretRef.name",
        "foreign-secret",
    ),
    (
        "secretKeyRef",
        container_with(env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": FOREIGN, "key": "k"}}}]),
        f"{C0}.env[0].valueFrom.secretKeyRef.name",
        "foreign-secret",
    ),
    (
        "run-secret-of-k8x",
        container_with(env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "k8x-run-0123", "key": "k"}}}]),
        f"{C0}.env[0].valueFrom.secretKeyRef.name",
        "foreign-secret",
    ),
    (
        "hostPort",
        container_with(ports=[{"containerPort": 80, "hostPort": 8080}]),
        f"{C0}.ports[0].hostPort",
        "host-port",
    ),
    ("runAsUser-0", container_with(securityContext={"runAsUser": 0}), f"{C0}.securityContext.runAsUser", "run-as-root"),
    (
        "runAsNonRoot-false",
        job_with(securityContext={"runAsNonRoot": False}),
        f"{POD}.securityContext.runAsNonRoot",
        "run-as-root",
    ),
    ("schedulerName", job_with(schedulerName="my-scheduler"), f"{POD}.schedulerName", "scheduler-name"),
    (
        "imagePullSecrets",
        job_with(imagePullSecrets=[{"name": "someone-elses-login"}]),
        f"{POD}.imagePullSecrets[0]",
        "pull-secret",
    ),
    (
        "toleration",
        job_with(tolerations=[{"key": "gpu", "operator": "Exists"}]),
        f"{POD}.tolerations[0]",
        "toleration",
    ),
    ("parallelism", {**BASE, "spec": {**BASE["spec"], "parallelism": 3}}, "spec.parallelism", "single-pod"),
    ("completions", {**BASE, "spec": {**BASE["spec"], "completions": 2}}, "spec.completions", "single-pod"),
]

ENTRY_POINTS = ("console", "k8x_apply", "git")


def errors_via(
    entry: str, *, deployment: str, project: Project, client: Client, git_server: GitServer, tmp_path: Path
) -> set[tuple[str, str]]:
    if entry == "console":
        return via_console(client, project, deployment=deployment)
    if entry == "k8x_apply":
        root = tmp_path / "apply"
        service_write(root, SERVICE, deployment=deployment)
        return via_apply(root, project)
    return via_git(git_server, tmp_path, project, deployment=deployment)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(("template", "path", "rule"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_each_refused_field_is_named_with_its_rule_at_every_entry_point(
    entry: str,
    template: dict[str, Any],
    path: str,
    rule: str,
    project: Project,
    admin_client: Client,
    git_server: GitServer,
    tmp_path: Path,
) -> None:
    found = errors_via(
        entry,
        deployment=yaml.safe_dump(template, sort_keys=False),
        project=project,
        client=admin_client,
        git_server=git_server,
        tmp_path=tmp_path,
    )
    assert (path, rule) in found, f"{entry} did not name {path} [rule {rule}]; it named {sorted(found)}"
    assert not Service.objects.filter(project=project).exists(), "nothing may be applied"


THE_BAD_DIRECTORY = """\
apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      hostNetwork: true
      hostPID: true
      containers:
        - name: main
          image: localhost:5000/k8x/busybox:1
          securityContext:
            privileged: true
          volumeMounts:
            - {name: root, mountPath: /host}
      volumes:
        - name: root
          hostPath: {path: /}
"""


def test_the_same_bad_service_directory_gives_the_same_errors_everywhere(
    project: Project, admin_client: Client, git_server: GitServer, tmp_path: Path
) -> None:
    """Issue 16's acceptance: console, k8x_apply and git sync agree, field by field and rule by rule."""
    results = {
        entry: errors_via(
            entry,
            deployment=THE_BAD_DIRECTORY,
            project=project,
            client=admin_client,
            git_server=git_server,
            tmp_path=tmp_path / entry,
        )
        for entry in ENTRY_POINTS
    }
    expected = {
        (f"{POD}.hostNetwork", "host-namespaces"),
        (f"{POD}.hostPID", "host-namespaces"),
        (f"{C0}.securityContext.privileged", "privileged"),
        (f"{POD}.volumes[0].hostPath", "host-path"),
    }
    assert results["console"] == expected, results
    assert results["k8x_apply"] == expected
    assert results["git"] == expected


def test_retries_over_the_cap_are_refused_everywhere(
    project: Project, admin_client: Client, git_server: GitServer, tmp_path: Path, settings: Any
) -> None:
    settings.K8X_MAX_RETRIES = 10
    plain = yaml.safe_dump(BASE)
    assert via_console(admin_client, project, deployment=plain, retries=11) == {("retries", "retries-cap")}
    root = tmp_path / "apply"
    service_write(root, SERVICE, deployment=plain, manifest={"retries": 11})
    assert via_apply(root, project) == {("retries", "retries-cap")}
    assert via_git(git_server, tmp_path, project, deployment=plain, retries=11) == {("retries", "retries-cap")}


def test_baseline_allows_root_but_never_host_access() -> None:
    root = yaml.safe_dump(container_with(securityContext={"runAsUser": 0}))
    _, at_restricted = validation.template_check(text=root, service_name=SERVICE, level="restricted")
    _, at_baseline = validation.template_check(text=root, service_name=SERVICE, level="baseline")
    assert [(p.path, p.rule) for p in at_restricted] == [(f"{C0}.securityContext.runAsUser", "run-as-root")]
    assert at_baseline == []
    _, host = validation.template_check(
        text=yaml.safe_dump(job_with(hostPID=True)), service_name=SERVICE, level="baseline"
    )
    assert [(p.path, p.rule) for p in host] == [(f"{POD}.hostPID", "host-namespaces")]
    own = secret_volume({"secret": {"secretName": f"k8x-svc-{SERVICE}"}})
    assert validation.template_check(text=yaml.safe_dump(own), service_name=SERVICE, level="restricted")[1] == []


# --- on the cluster ----------------------------------------------------------------


def _run(service: Service) -> Run:
    return Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, params={}, status=RunStatus.QUEUED)


def _wait(run: Run, timeout: float = 120) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run still {run.status} after {timeout:.0f}s ({run.reason} {run.message})")
        time.sleep(0.3)


def test_the_launcher_refuses_a_stored_template_that_breaks_the_policy(project: Project, kube_api: Any) -> None:
    service = Service.objects.create(
        project=project, name="sneaky", job_template=json.dumps(container_with(securityContext={"privileged": True}))
    )
    run = _run(service)
    assert launch.run_launch(run_id=run.pk) == launch.LaunchResult.FAILED
    run.refresh_from_db()
    assert (run.status, run.reason) == (RunStatus.FAILED, "PolicyViolation")
    assert f"{C0}.securityContext.privileged" in run.message and "[rule privileged]" in run.message
    assert not admin_job_exists(kube_api, project.namespace, run_job_name(run.pk))


def test_pod_security_admission_refuses_what_slips_past_k8x(
    project: Project, monkeypatch: pytest.MonkeyPatch, kube_api: Any
) -> None:
    """A template inserted straight into the database, with K8X's own check switched off
    (as a bug in it would): the namespace's Pod Security level still refuses the pod."""
    monkeypatch.setattr(validation, "service_check_stored", lambda *, service: [])
    bad = container_with(securityContext={"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}})
    bad["spec"]["template"]["spec"]["hostPID"] = True
    service = Service.objects.create(project=project, name="slipped", job_template=json.dumps(bad))
    run = _run(service)
    assert launch.run_launch(run_id=run.pk) == launch.LaunchResult.FAILED
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.reason == "PodSecurity", run.message
    assert 'violates PodSecurity "restricted:latest"' in run.message and "privileged" in run.message
    assert not admin_job_exists(kube_api, project.namespace, run_job_name(run.pk))


def test_an_edited_service_is_asked_about_again(
    project: Project, monkeypatch: pytest.MonkeyPatch, kube_api: Any
) -> None:
    """The launcher remembers an admitted service by its version: after an edit (a
    new ``updated_at``) admission is asked again, and refuses the new pod."""
    monkeypatch.setattr(validation, "service_check_stored", lambda *, service: [])
    service = Service.objects.create(project=project, name="edited", job_template=json.dumps(container_with()))
    first = _run(service)
    assert launch.run_launch(run_id=first.pk) == launch.LaunchResult.STARTED
    bad = container_with(securityContext={"privileged": True})
    bad["spec"]["template"]["spec"]["hostPID"] = True
    service.job_template = json.dumps(bad)
    service.save()
    second = _run(service)
    assert launch.run_launch(run_id=second.pk) == launch.LaunchResult.FAILED
    second.refresh_from_db()
    assert second.reason == "PodSecurity", second.message
    assert not admin_job_exists(kube_api, project.namespace, run_job_name(second.pk))


@pytest.fixture
def watcher(project: Project) -> Any:
    w = Watcher(namespace=project.namespace)
    thread = threading.Thread(target=w.run_forever, name="security-watcher", daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(timeout=10)


def test_plain_template_and_simple_service_run_under_restricted_defaults(project: Project, watcher: Any) -> None:
    plain = Service.objects.create(
        project=project,
        name="plain",
        job_template=yaml.safe_dump(
            container_with(command=["sh", "-c", 'echo "uid=$(id -u) home=$HOME"; touch /tmp/w'])
        ),
    )
    simple = Service.objects.create(
        project=project,
        name="simple",
        image="localhost:5000/k8x/python:3",
        command=["python3", "-c", "import os, tempfile; tempfile.mkstemp(); print('uid=%d' % os.getuid())"],
    )
    runs = [_run(plain), _run(simple)]
    for run in runs:
        assert launch.run_launch(run_id=run.pk) == launch.LaunchResult.STARTED
    uid = project_uid(project_id=project.pk)
    for run in runs:
        done = _wait(run)
        log = run_log_text(done.pk)
        assert done.status == RunStatus.SUCCEEDED, f"{done.reason}: {done.message}\n{log}"
        assert f"uid={uid}" in log

    job = kube.job_get(namespace=project.namespace, name=run_job_name(runs[0].pk))
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = pod_spec["containers"][0]["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"]
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (1, 1)


def test_project_namespace_carries_its_level_quota_and_limits(project: Project) -> None:
    project.quota = {"pods": "7"}
    project.save()
    project_namespace_ensure(project=project)
    ns = kube.call("GET", f"/api/v1/namespaces/{project.namespace}")
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"
    quota = kube.call("GET", f"/api/v1/namespaces/{project.namespace}/resourcequotas/{QUOTA_NAME}")
    assert quota["spec"]["hard"]["pods"] == "7"
    assert "limits.memory" in quota["spec"]["hard"]
    limits = kube.call("GET", f"/api/v1/namespaces/{project.namespace}/limitranges/{LIMITS_NAME}")
    assert limits["spec"]["limits"][0]["default"]["memory"]

    # A superuser lowers the level: the existing namespace is patched, idempotently.
    project.pod_security_level = "baseline"
    project.save()
    assert project_namespace_ensure(project=project) is True
    assert project_namespace_ensure(project=project) is False
    ns = kube.call("GET", f"/api/v1/namespaces/{project.namespace}")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_no_pod_with_host_access_exists_in_any_project_namespace(kube_api: Any) -> None:
    """Runs last in this module: whatever the tests above tried, no K8X-managed
    namespace holds a pod with host namespaces, hostPath or privileged containers
    (asked as admin: K8X's identity may not list namespaces)."""
    core = client.CoreV1Api(kube_api)
    offenders = []
    for ns in core.list_namespace(label_selector=kube.MANAGED_BY_LABEL + "=k8x").items:
        name = str(ns.metadata.name) if ns.metadata else ""
        for pod in kube_api.sanitize_for_serialization(core.list_namespaced_pod(name)).get("items") or []:
            spec = pod.get("spec") or {}
            host = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
            host += ["hostPath" for v in spec.get("volumes") or [] if "hostPath" in v]
            host += [
                "privileged"
                for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                if (c.get("securityContext") or {}).get("privileged")
            ]
            if host:
                offenders.append(f"{name}/{pod['metadata']['name']}: {host}")
    assert offenders == []


def test_a_template_that_leaves_the_projects_nodes_is_refused_everywhere(
    project: Project, admin_client: Client, git_server: GitServer, tmp_path: Path
) -> None:
    """Placement is the project's (set by a platform superuser): a template may narrow it, never leave it."""
    Project.objects.filter(pk=project.pk).update(node_selector={"k8x.io/pool": "batch"})
    project.refresh_from_db()
    elsewhere = yaml.safe_dump(job_with(nodeSelector={"k8x.io/pool": "gpu"}))
    expected = {(f"{POD}.nodeSelector.k8x.io/pool", "placement")}
    for entry in ENTRY_POINTS:
        found = errors_via(
            entry,
            deployment=elsewhere,
            project=project,
            client=admin_client,
            git_server=git_server,
            tmp_path=tmp_path / entry,
        )
        assert found == expected, (entry, found)
    assert not Service.objects.filter(project=project).exists()
    narrower = yaml.safe_dump(job_with(nodeSelector={"k8x.io/pool": "batch", "zone": "a"}))
    _, problems = validation.template_check(
        text=narrower, service_name=SERVICE, level="restricted", placement=project_placement(project=project)
    )
    assert problems == []
