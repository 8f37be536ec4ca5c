"""A project's cluster defaults on the real local cluster: its registry login lets runs
pull from a registry that needs one (the local registry behind htpasswd on :5001,
deploy/local/registry-auth.sh), its placement, default resources and default
timeout reach every Job (the service's own values win), and a template that leaves
its placement fails the run without a Job."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from k8x_core.models import Project, Run, RunStatus, Secret, Service, run_job_name
from k8x_core.runs import launch
from k8x_core.runs.configs import registry_login_set
from k8x_core.runs.defaults import PULL_SECRET_NAME
from k8x_core.runs.registry import registry_forget, secret_entry_delete
from k8x_core.watch.watcher import Watcher
from tests.cluster_fixtures import KubeCluster, admin_job_exists
from tests.k8x_core.runs.conftest import send_event, wait_run

pytestmark = pytest.mark.cluster

AUTH_IMAGE = "localhost:5001/k8x/busybox:1"
BUSYBOX = "localhost:5000/k8x/busybox:1"


def _template(image: str, command: str, **pod: Any) -> str:
    container = {"name": "main", "image": image, "command": ["sh", "-c", command]}
    if image == AUTH_IMAGE:
        # Always pull: a copy the node already has must not stand in for the login.
        container["imagePullPolicy"] = "Always"
    return json.dumps(
        {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 1, "containers": [container], **pod}}}}
    )


def _run(service: Service, *, timeout: float = 120) -> Run:
    (run,) = send_event(f"com.test.{service.name}")
    launch.run_launch(run_id=run.pk)
    return wait_run(run.pk, timeout=timeout)


def _job(kube_api: Any, namespace: str, run: Run) -> dict[str, Any]:
    job = client.BatchV1Api(kube_api).read_namespaced_job(run_job_name(run.pk), namespace)
    out: dict[str, Any] = kube_api.sanitize_for_serialization(job)
    return out


def _registry_login(kube_cluster: KubeCluster) -> tuple[str, str]:
    path = Path(kube_cluster.admin_kubeconfig).parent / "registry-auth" / "credentials"
    assert path.is_file(), f"{path} missing: deploy/local/registry-auth.sh (run by start.sh) has not run"
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return values["REGISTRY_AUTH_USERNAME"], values["REGISTRY_AUTH_PASSWORD"]


def _registry_secret(kube_api: Any, namespace: str) -> Any:
    try:
        return client.CoreV1Api(kube_api).read_namespaced_secret(PULL_SECRET_NAME, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture
def node_label(kube_api: Any) -> Iterator[tuple[str, str]]:
    """A label of this test's own on the node (set and removed as the cluster admin)."""
    core = client.CoreV1Api(kube_api)
    (node,) = core.list_node().items
    assert node.metadata is not None and node.metadata.name
    name: str = node.metadata.name
    key, value = f"k8x-test.io/pool-{secrets.token_hex(3)}", "batch"
    core.patch_node(name, {"metadata": {"labels": {key: value}}})
    try:
        yield key, value
    finally:
        core.patch_node(name, {"metadata": {"labels": {key: None}}})


def test_a_project_login_lets_runs_pull_from_a_registry_that_needs_one(
    project: Project,
    make_service: Callable[..., Service],
    watcher: Watcher,
    kube_api: Any,
    kube_cluster: KubeCluster,
) -> None:
    registry_forget(project=project)
    service = make_service("pull", job_template=_template(AUTH_IMAGE, "echo pulled with a login"))

    refused = _run(service)
    assert refused.status == RunStatus.FAILED
    assert refused.reason in ("ErrImagePull", "ImagePullBackOff"), (refused.reason, refused.message)

    username, password = _registry_login(kube_cluster)
    registry_login_set(
        key="LOCAL_REGISTRY", server="localhost:5001", username=username, password=password, project=project
    )
    run = _run(service)
    assert run.status == RunStatus.SUCCEEDED, (run.reason, run.message)
    job = _job(kube_api, project.namespace, run)
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": PULL_SECRET_NAME}]
    stored = _registry_secret(kube_api, project.namespace)
    assert stored.type == "kubernetes.io/dockerconfigjson"
    # The login is not a variable of the container.
    env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    assert "LOCAL_REGISTRY" not in env

    # The last login goes: so does the Secret.
    secret_entry_delete(entry=Secret.objects.select_related("project").get(key="LOCAL_REGISTRY", project=project))
    assert _registry_secret(kube_api, project.namespace) is None


def test_placement_and_defaults_reach_the_job_and_the_service_wins(
    project: Project,
    make_service: Callable[..., Service],
    watcher: Watcher,
    kube_api: Any,
    node_label: tuple[str, str],
) -> None:
    key, value = node_label
    toleration = {"key": "k8x-test.io/dedicated", "operator": "Exists", "effect": "NoSchedule"}
    defaults = {"requests": {"cpu": "20m"}, "limits": {"memory": "96Mi"}}
    Project.objects.filter(pk=project.pk).update(
        node_selector={key: value}, tolerations=[toleration], default_resources=defaults, default_timeout=300
    )
    plain = make_service("plain", command=["sh", "-c", "echo placed"])
    own = make_service(
        "own",
        command=["sh", "-c", "echo own"],
        resources={"limits": {"memory": "80Mi"}},
        timeout_seconds=100,
    )

    run = _run(plain)
    assert run.status == RunStatus.SUCCEEDED, (run.reason, run.message)
    job = _job(kube_api, project.namespace, run)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {key: value}
    assert toleration in pod["tolerations"]
    assert pod["containers"][0]["resources"] == defaults
    assert job["spec"]["activeDeadlineSeconds"] == 300
    assert "imagePullSecrets" not in pod  # no registry login in this project

    run = _run(own)
    assert run.status == RunStatus.SUCCEEDED, (run.reason, run.message)
    job = _job(kube_api, project.namespace, run)
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"memory": "80Mi"}}
    assert job["spec"]["activeDeadlineSeconds"] == 100
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {key: value}


def test_the_default_timeout_ends_a_run_timed_out(
    project: Project, make_service: Callable[..., Service], watcher: Watcher
) -> None:
    Project.objects.filter(pk=project.pk).update(default_timeout=3)
    service = make_service("slow", job_template=_template(BUSYBOX, "echo tick; sleep 60"))
    run = _run(service, timeout=90)
    assert run.status == RunStatus.TIMED_OUT
    assert run.reason == "DeadlineExceeded"


def test_a_template_that_leaves_the_placement_fails_without_a_job(
    project: Project, make_service: Callable[..., Service], kube_api: Any, node_label: tuple[str, str]
) -> None:
    key, value = node_label
    Project.objects.filter(pk=project.pk).update(node_selector={key: value})
    # Written past the console (straight to the database): the launcher checks again.
    make_service("elsewhere", job_template=_template(BUSYBOX, "echo no", nodeSelector={key: "other"}))
    (run,) = send_event("com.test.elsewhere")
    assert launch.run_launch(run_id=run.pk) == launch.LaunchResult.FAILED
    run = Run.objects.get(pk=run.pk)
    assert run.status == RunStatus.FAILED
    assert run.reason == "PolicyViolation"
    assert f"nodeSelector.{key}" in run.message
    assert not admin_job_exists(kube_api, project.namespace, run_job_name(run.pk))
