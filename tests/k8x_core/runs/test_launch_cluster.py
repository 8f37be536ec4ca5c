"""Launching runs on the real local cluster and following them to their end."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client
from kubernetes import client
from kubernetes.client.rest import ApiException

from k8x_core import kube
from k8x_core.models import STATUS_RANK, Run, RunStatus, Service, TriggerKind, run_job_name
from k8x_core.runs import jobspec, launch
from k8x_core.runs.defaults import project_run_defaults
from k8x_core.runs.launchread import launch_run_read
from k8x_core.runs.live import run_group
from k8x_core.runs.logs import run_log_text
from k8x_core.runs.namespaces import project_namespace_ensure
from k8x_core.runs.queue import run_enqueue_now
from k8x_core.watch.watcher import Watcher
from tests.cluster_fixtures import admin_secret_read
from tests.k8x_core.runs.conftest import PYTHON, REPO, send_event, service_secret, wait_run

pytestmark = pytest.mark.cluster

CONTRACT = [
    "K8X_RUN_ID",
    "K8X_SERVICE",
    "K8X_PROJECT",
    "K8X_TRIGGER",
    "K8X_CORRELATION_ID",
    "K8X_EVENT_ID",
    "K8X_EVENT_TYPE",
    "K8X_EVENT_SOURCE",
    "K8X_EVENT_SUBJECT",
    "K8X_EVENT_TIME",
    "K8X_EVENT",
    "K8X_PARAMS",
    "K8X_PARAM_AMOUNT",
    "K8X_PARAM_ORDER_ID",
    "K8X_EVENTS_URL",
]

# Prints every contract variable, the configs, and only digests of the secrets
# (a secret value must never reach a log line).
BUSYBOX_SCRIPT = (
    "env | grep -E '^(K8X_|GREETING=|COLOR=)' | grep -v '^K8X_RUN_TOKEN=' | sort; "
    'echo "DB_PASSWORD_SHA=$(printf %s "$DB_PASSWORD" | sha256sum | cut -d" " -f1)"; '
    'echo "API_TOKEN_SHA=$(printf %s "$API_TOKEN" | sha256sum | cut -d" " -f1)"; '
    'echo "K8X_RUN_TOKEN_SHA=$(printf %s "$K8X_RUN_TOKEN" | sha256sum | cut -d" " -f1)"'
)

PYTHON_SCRIPT = """
import hashlib, os
from k8x_sdk import context
for v in %r:
    print(v + "=" + os.environ.get(v, "<unset>"), flush=True)
print("SDK_PARAMS=" + repr(sorted(context.params.items())))
print("SDK_GREETING=" + context.config["GREETING"])
print("SDK_EVENT_TYPE=" + context.event["type"])
for key in ("DB_PASSWORD", "API_TOKEN"):
    print(key + "_SHA=" + hashlib.sha256(context.secrets[key].encode()).hexdigest())
print("K8X_RUN_TOKEN_SHA=" + hashlib.sha256(os.environ["K8X_RUN_TOKEN"].encode()).hexdigest())
""" % ([*CONTRACT, "GREETING", "COLOR"])


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def log_values(log: str) -> dict[str, str]:
    """KEY=value pairs of a stored log (lines are "<RFC 3339 timestamp> <text>")."""
    values: dict[str, str] = {}
    for line in log.splitlines():
        ts, _, text = line.partition(" ")
        assert ts[:4].isdigit() and "T" in ts, f"line without a timestamp: {line!r}"
        key, sep, value = text.partition("=")
        if sep:
            values[key] = value
    return values


def sdk_configmap(kube_api: Any, namespace: str) -> None:
    """The SDK as a ConfigMap in the namespace (a test fixture, so written as admin)."""
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="k8x-sdk"),
        data={"k8x_sdk.py": (REPO / "sdk" / "python" / "k8x_sdk.py").read_text()},
    )
    try:
        client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise


def python_template(script: str, *, name: str = "main") -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": name,
                                "image": PYTHON,
                                "command": ["python3", "-c", script],
                                "env": [{"name": "PYTHONPATH", "value": "/opt/k8x"}],
                                "volumeMounts": [{"name": "sdk", "mountPath": "/opt/k8x"}],
                            }
                        ],
                        "volumes": [{"name": "sdk", "configMap": {"name": "k8x-sdk"}}],
                    }
                }
            },
        }
    )


def check_contract(run: Run, service: Service, expected: dict[str, str], kube_api: Any) -> None:
    # Secret values as they are now (a project-scope one was set again for the other service).
    expected = {**expected, **{k: service_secret(service, k) for k in ("DB_PASSWORD", "API_TOKEN")}}
    values = log_values(run_log_text(run.pk))
    event = run.event
    assert event is not None
    assert values["K8X_RUN_ID"] == str(run.pk)
    assert values["K8X_SERVICE"] == service.name
    assert values["K8X_PROJECT"] == service.project.slug
    assert values["K8X_TRIGGER"] == "event"
    assert values["K8X_CORRELATION_ID"] == run.correlation_id == event.correlation_id
    assert values["K8X_EVENT_ID"] == event.ce_id
    assert values["K8X_EVENT_TYPE"] == event.type
    assert values["K8X_EVENT_SOURCE"] == event.source
    assert values["K8X_EVENT_SUBJECT"] == "order/42"
    assert values["K8X_EVENT_TIME"] == event.payload["time"]
    assert json.loads(values["K8X_EVENT"]) == event.payload
    assert json.loads(values["K8X_PARAMS"]) == {"amount": 120, "order-id": "A-7", "lines": [1, 2]}
    assert values["K8X_PARAM_AMOUNT"] == "120"
    assert values["K8X_PARAM_ORDER_ID"] == "A-7"
    assert values["K8X_EVENTS_URL"] == "http://10.244.0.1:8000/api/events"
    assert values["GREETING"] == expected["GREETING"]
    assert values["COLOR"] == expected["COLOR"]
    # Secrets were in the container with the right values ...
    assert values["DB_PASSWORD_SHA"] == sha(expected["DB_PASSWORD"])
    assert values["API_TOKEN_SHA"] == sha(expected["API_TOKEN"])
    ns = service.project.namespace
    run_secret = admin_secret_read(kube_api, ns, jobspec.run_secret_name(run.pk))
    token = run_secret["data"]["K8X_RUN_TOKEN"]
    # The Job owns the run Secret: it is collected with the Job.
    job_uid = kube.job_get(namespace=ns, name=run_job_name(run.pk))["metadata"]["uid"]
    assert [o["uid"] for o in run_secret["metadata"].get("ownerReferences", [])] == [job_uid]
    import base64

    assert values["K8X_RUN_TOKEN_SHA"] == sha(base64.b64decode(token).decode())
    # ... and nowhere in the Job, its pods, or the run row.
    job_text = json.dumps(kube.job_get(namespace=ns, name=run_job_name(run.pk)))
    pods, _ = kube.pod_list(namespace=ns, label_selector=f"k8x.io/run-id={run.pk}")
    pod_text = json.dumps(pods)
    run_text = json.dumps({k: str(v) for k, v in Run.objects.filter(pk=run.pk).values()[0].items()})
    for secret in (expected["DB_PASSWORD"], expected["API_TOKEN"], base64.b64decode(token).decode()):
        assert secret not in job_text
        assert secret not in pod_text
        assert secret not in run_text
    assert {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": f"k8x-svc-{service.name}", "key": "DB_PASSWORD"}},
    } in (json.loads(job_text)["spec"]["template"]["spec"]["containers"][0]["env"])


def test_busybox_and_python_services_see_the_contract(
    make_service: Callable[..., Service],
    configs_and_secrets: Callable[[Service], dict[str, str]],
    watcher: Watcher,
    kube_api: Any,
) -> None:
    busy = make_service("busy", event_type="com.test.order", command=["sh", "-c", BUSYBOX_SCRIPT])
    sdk_configmap(kube_api, busy.project.namespace)
    py = make_service("py", event_type="com.test.order", job_template=python_template(PYTHON_SCRIPT))
    expected_busy = configs_and_secrets(busy)
    expected_py = configs_and_secrets(py)

    runs = send_event("com.test.order", {"amount": 120, "order-id": "A-7", "lines": [1, 2]}, subject="order/42")
    assert {r.service.name for r in runs} == {"busy", "py"}
    for run in runs:
        assert launch.run_launch(run_id=run.pk) == launch.LaunchResult.STARTED
        assert Run.objects.get(pk=run.pk).status in (RunStatus.STARTING, RunStatus.RUNNING, RunStatus.SUCCEEDED)

    for run in runs:
        done = wait_run(run.pk)
        assert done.status == RunStatus.SUCCEEDED, (done.reason, done.message, run_log_text(done.pk))
        assert done.exit_code == 0
        assert done.started_at is not None and done.finished_at is not None
        assert done.started_at <= done.finished_at
        assert done.attempts == 1
        assert done.job_name == run_job_name(run.pk)
        assert done.pod_name.startswith(done.job_name)
        service = busy if done.service_id == busy.pk else py
        check_contract(done, service, expected_busy if service is busy else expected_py, kube_api)

    py_run = next(r for r in runs if r.service_id == py.pk)
    values = log_values(run_log_text(py_run.pk))
    assert values["SDK_PARAMS"] == repr([("amount", 120), ("lines", [1, 2]), ("order-id", "A-7")])
    assert values["SDK_GREETING"] == "hello from project"
    assert values["SDK_EVENT_TYPE"] == "com.test.order"

    # The log outlives the pods: delete the Job and its pods, the log is still served.
    busy_run = next(r for r in runs if r.service_id == busy.pk)
    kube.job_delete(namespace=busy.project.namespace, name=run_job_name(busy_run.pk), propagation="Foreground")
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("launch-admin", "a@example.com", "pw-launch-123")
    client = Client()
    client.force_login(admin)
    response = client.get(f"/api/runs/{busy_run.pk}/log")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert f"K8X_RUN_ID={busy_run.pk}" in response.content.decode()
    assert Run.objects.get(pk=busy_run.pk).status == RunStatus.SUCCEEDED


def _launch_and_wait(service: Service, data: Any = None, timeout: float = 120) -> Run:
    (run,) = send_event(f"com.test.{service.name}", data)
    launch.run_launch(run_id=run.pk)
    return wait_run(run.pk, timeout=timeout)


def test_failing_command_is_failed_with_its_exit_code(make_service: Callable[..., Service], watcher: Watcher) -> None:
    service = make_service("fails", command=["sh", "-c", "echo about to fail; exit 7"], retries=1)
    run = _launch_and_wait(service)
    assert run.status == RunStatus.FAILED
    assert run.exit_code == 7
    assert run.reason == "BackoffLimitExceeded"
    assert run.attempts == 2
    assert run_log_text(run.pk).count("about to fail") == 2  # both attempts are kept
    assert "attempt 2" in run_log_text(run.pk)


def test_timeout_is_timed_out(make_service: Callable[..., Service], watcher: Watcher) -> None:
    template = json.dumps(
        {
            "spec": {
                "template": {
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "slow",
                                "image": "localhost:5000/k8x/busybox:1",
                                "command": ["sh", "-c", "echo tick; sleep 60"],
                            }
                        ],
                    }
                }
            }
        }
    )
    service = make_service("slow", job_template=template, timeout_seconds=3)
    run = _launch_and_wait(service, timeout=90)
    assert run.status == RunStatus.TIMED_OUT
    assert run.reason == "DeadlineExceeded"
    assert "tick" in run_log_text(run.pk)


def test_bad_image_is_failed_with_the_pull_reason(make_service: Callable[..., Service], watcher: Watcher) -> None:
    service = make_service("badimage", image="localhost:5000/k8x/does-not-exist:1")
    run = _launch_and_wait(service, timeout=120)
    assert run.status == RunStatus.FAILED
    assert run.reason in ("ImagePullBackOff", "ErrImagePull")
    assert "does-not-exist" in run.message
    # The Job is deleted: Kubernetes would otherwise retry the pull forever.
    assert _job_gone(service, run, timeout=30)


def test_invalid_template_is_failed_with_the_api_message(make_service: Callable[..., Service]) -> None:
    template = json.dumps(
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "Bad_Name", "image": "localhost:5000/k8x/busybox:1"}]}}
            }
        }
    )
    service = make_service("invalid", job_template=template)
    (run,) = send_event("com.test.invalid")
    assert launch.run_launch(run_id=run.pk) == launch.LaunchResult.FAILED
    run = Run.objects.get(pk=run.pk)
    assert run.status == RunStatus.FAILED
    assert "Bad_Name" in run.message and "invalid" in run.message.lower()
    assert run.reason
    with pytest.raises(kube.KubeNotFound):
        kube.job_get(namespace=service.project.namespace, name=run_job_name(run.pk))


def test_concurrency_one_runs_three_events_one_at_a_time_in_order(
    make_service: Callable[..., Service], watcher: Watcher, start_worker: Callable[..., Any]
) -> None:
    service = make_service("one", command=["sh", "-c", "echo start; sleep 2; echo end"], max_concurrency=1)
    runs = []
    for i in range(3):
        (run,) = send_event("com.test.one", {"i": i})
        runs.append(run)
    # The hub enqueued the three launches on commit; two workers compete for them.
    start_worker()
    start_worker()
    done = [wait_run(r.pk, timeout=180) for r in runs]
    assert [r.status for r in done] == [RunStatus.SUCCEEDED] * 3
    pods = []
    for r in done:
        (pod,) = kube.pod_list(namespace=service.project.namespace, label_selector=f"k8x.io/run-id={r.pk}")[0]
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        pods.append((term["startedAt"], term["finishedAt"]))
    # In arrival order, and never two at once.
    assert pods == sorted(pods)
    for (_, end), (start, _) in itertools.pairwise(pods):
        assert end <= start, pods


def test_worker_killed_after_job_create_leaves_one_job_and_the_run_completes(
    make_service: Callable[..., Service], start_watcher: Callable[[], Watcher], start_worker: Callable[..., Any]
) -> None:
    service = make_service("crash", command=["sh", "-c", "echo survived"])
    (run,) = send_event("com.test.crash")
    worker = start_worker(burst=True, simple=True, K8X_FAILPOINT="after_job_create")
    assert worker.wait(timeout=60) == -signal.SIGKILL
    ns = service.project.namespace
    job = kube.job_get(namespace=ns, name=run_job_name(run.pk))
    assert job["metadata"]["labels"]["k8x.io/run-id"] == str(run.pk)
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED  # killed before marking it

    # The launch is tried again (the reconciler re-enqueues stale queued runs):
    # the create meets 409 and adopts the Job that is there.
    assert launch.run_launch(run_id=run.pk) == launch.LaunchResult.ADOPTED
    assert Run.objects.get(pk=run.pk).status == RunStatus.STARTING
    run_enqueue_now(run_id=run.pk)
    start_worker(burst=True).wait(timeout=60)  # a third try finds nothing to do

    start_watcher()
    done = wait_run(run.pk)
    assert done.status == RunStatus.SUCCEEDED
    assert "survived" in run_log_text(done.pk)
    jobs, _ = kube.job_list(namespace=ns, label_selector=f"k8x.io/run-id={run.pk}")
    assert len(jobs) == 1
    assert jobs[0]["metadata"]["uid"] == job["metadata"]["uid"]
    pods, _ = kube.pod_list(namespace=ns, label_selector=f"k8x.io/run-id={run.pk}")
    assert len(pods) == 1


def test_watcher_completes_a_queued_run_whose_job_exists(
    make_service: Callable[..., Service], watcher: Watcher, start_worker: Callable[..., Any]
) -> None:
    """A worker that died after creating the Job, and no launch retried yet: the
    watcher alone follows the Job and ends the run (queued -> running is forward)."""
    make_service("orphan", command=["sh", "-c", "echo orphan done"])
    (run,) = send_event("com.test.orphan")
    start_worker(burst=True, simple=True, K8X_FAILPOINT="after_job_create").wait(timeout=60)
    done = wait_run(run.pk)
    assert done.status == RunStatus.SUCCEEDED
    assert "orphan done" in run_log_text(done.pk)
    assert done.job_name == run_job_name(run.pk)


def test_secret_sent_with_the_job_reaches_the_container(
    make_service: Callable[..., Service], watcher: Watcher, settings: Any, kube_api: Any
) -> None:
    """K8X_LAUNCH_SECRET_WITH_JOB: the run Secret and the Job go out together; the
    token still reaches the container only through the Secret."""
    settings.K8X_LAUNCH_SECRET_WITH_JOB = True
    service = make_service("together", command=["sh", "-c", 'echo "token=${#K8X_RUN_TOKEN}"'])
    run = _launch_and_wait(service)
    assert run.status == RunStatus.SUCCEEDED, (run.reason, run.message)
    ns = service.project.namespace
    token = admin_secret_read(kube_api, ns, jobspec.run_secret_name(run.pk))["data"]["K8X_RUN_TOKEN"]
    import base64

    plain = base64.b64decode(token).decode()
    assert f"token={len(plain)}" in run_log_text(run.pk)
    assert plain not in json.dumps(kube.job_get(namespace=ns, name=run_job_name(run.pk)))


def test_a_queued_runs_job_without_its_secret_is_launched_again_and_completes(
    make_service: Callable[..., Service], watcher: Watcher, start_worker: Callable[..., Any], settings: Any
) -> None:
    """The launcher writes the run Secret and the Job at the same time: a worker that
    died in between can leave the Job without its Secret. The pod then waits on its
    configuration; the watcher enqueues the launch again, which adopts the Job and
    writes the Secret, and the kubelet starts the container on its next try."""
    # The kubelet's retry of a pod waiting on a Secret backs off by itself (~10 s
    # and more on a loaded node): room for it before the grace would fail the run.
    settings.K8X_CREATE_CONTAINER_GRACE_SECONDS = 120
    service = make_service("nosecret", command=["sh", "-c", 'test -n "$K8X_RUN_TOKEN" && echo token here'])
    (run,) = send_event("com.test.nosecret")
    ns = service.project.namespace
    read = launch_run_read(run_id=run.pk)
    assert read is not None
    build = jobspec.job_build(
        run=read,
        service=read.service,
        project_slug=service.project.slug,
        namespace=ns,
        event=read.event,
        configs={},
        secret_keys=[],
        events_url="http://10.244.0.1:8000/api/events",
        run_token="unused",  # never written: the Secret is what is missing
        ttl_seconds_after_finished=600,
        defaults=project_run_defaults(project=read.service.project),
    )
    project_namespace_ensure(project=service.project)
    job = kube.job_create(namespace=ns, job=build.job)  # the Job only, as a worker killed in between leaves it

    start_worker()
    done = wait_run(run.pk, timeout=150)
    assert done.status == RunStatus.SUCCEEDED, (done.reason, done.message)
    assert "token here" in run_log_text(done.pk)
    jobs, _ = kube.job_list(namespace=ns, label_selector=f"k8x.io/run-id={run.pk}")
    assert [j["metadata"]["uid"] for j in jobs] == [job["metadata"]["uid"]]


async def _receive(layer: Any, channel: str) -> dict[str, Any]:
    return await asyncio.wait_for(layer.receive(channel), timeout=30)


def test_cancel_and_rerun(make_service: Callable[..., Service], watcher: Watcher) -> None:
    service = make_service("long", command=["sh", "-c", "echo begun; sleep 120"])
    (run,) = send_event("com.test.long")
    # Listen where the console listens: the run's channel group.
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(run_group(run.pk), channel)
    launch.run_launch(run_id=run.pk)
    wait_run(run.pk, statuses={RunStatus.RUNNING}, timeout=60)
    deadline = time.monotonic() + 30
    while "begun" not in run_log_text(run.pk) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "begun" in run_log_text(run.pk)  # followed live, stored so far
    messages: list[dict[str, Any]] = []
    while not any(m["type"] == "run.log" for m in messages):
        messages.append(async_to_sync(_receive)(layer, channel))
    statuses = [m["status"] for m in messages if m["type"] == "run.status"]
    assert "running" in statuses
    assert statuses == sorted(statuses, key=lambda st: STATUS_RANK[RunStatus(st)])  # forward only
    (log_message,) = [m for m in messages if m["type"] == "run.log"]
    stamp, _, text = log_message["lines"][0].partition(" ")
    assert text == "begun"
    assert stamp[:4].isdigit() and stamp.endswith("Z")
    assert launch.run_cancel(run_id=run.pk, user=None)
    cancelled = Run.objects.get(pk=run.pk)
    assert cancelled.status == RunStatus.CANCELLED
    assert "begun" in run_log_text(cancelled.pk)
    # Foreground deletion: the Job goes once its pods are gone.
    assert _job_gone(service, run, timeout=60)
    assert not launch.run_cancel(run_id=run.pk, user=None)

    again = launch.run_rerun(run_id=run.pk, user=None)
    assert again.trigger_kind == TriggerKind.RETRY
    assert again.retry_of_id == run.pk
    assert again.correlation_id == run.correlation_id
    assert again.event_id == run.event_id
    assert again.status == RunStatus.QUEUED


def _job_gone(service: Service, run: Run, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kube.job_get(namespace=service.project.namespace, name=run_job_name(run.pk))
        except kube.KubeNotFound:
            return True
        time.sleep(0.3)
    return False


def test_job_that_vanishes_fails_the_run(make_service: Callable[..., Service], watcher: Watcher) -> None:
    service = make_service("vanish", command=["sh", "-c", "sleep 120"])
    (run,) = send_event("com.test.vanish")
    launch.run_launch(run_id=run.pk)
    wait_run(run.pk, statuses={RunStatus.RUNNING}, timeout=60)
    kube.job_delete(namespace=service.project.namespace, name=run_job_name(run.pk), propagation="Background")
    done = wait_run(run.pk, timeout=60)
    assert done.status == RunStatus.FAILED
    assert done.reason == "JobVanished"


def test_event_over_64_kib_is_mounted_as_a_file(make_service: Callable[..., Service], watcher: Watcher) -> None:
    make_service(
        "large", command=["sh", "-c", 'echo "size=$(wc -c < $K8X_EVENT_FILE) n=$K8X_PARAM_N event=${K8X_EVENT:-unset}"']
    )
    (run,) = send_event("com.test.large", {"blob": "x" * (80 * 1024), "n": 3})
    launch.run_launch(run_id=run.pk)
    done = wait_run(run.pk)
    assert done.status == RunStatus.SUCCEEDED, (done.reason, done.message)
    values = log_values(run_log_text(done.pk))
    assert int(values["size"].split()[0]) > 80 * 1024
    assert "n=3" in run_log_text(done.pk) and "event=unset" in run_log_text(done.pk)


def test_service_secret_follows_secret_changes(
    make_service: Callable[..., Service], project: Any, kube_api: Any
) -> None:
    from k8x_core.models import Scope, Secret
    from k8x_core.runs.configs import secret_set

    service = make_service("rotating")
    secret_set(key="PASSWORD", value="first", service=service)
    secret_set(key="SHARED", value="project-wide", project=project)
    assert launch.service_secrets_sync(service=service)
    name = jobspec.service_secret_name(service.name)
    import base64

    def data() -> dict[str, str]:
        raw = admin_secret_read(kube_api, project.namespace, name)["data"]
        return {k: base64.b64decode(v).decode() for k, v in raw.items()}

    assert data() == {"PASSWORD": "first", "SHARED": "project-wide"}
    secret_set(key="PASSWORD", value="second", service=service)
    Secret.objects.filter(scope=Scope.PROJECT, key="SHARED").delete()
    assert launch.service_secrets_sync(service=service)  # the values changed: written again
    assert data() == {"PASSWORD": "second"}
    assert not launch.service_secrets_sync(service=service)  # unchanged: no API call


def test_watcher_survives_losing_its_database_connections(
    make_service: Callable[..., Service], watcher: Watcher
) -> None:
    from django.db import connection

    make_service("dbloss", command=["sh", "-c", "echo one; sleep 3; echo two"])
    (run,) = send_event("com.test.dbloss")
    launch.run_launch(run_id=run.pk)
    wait_run(run.pk, statuses={RunStatus.RUNNING}, timeout=60)
    # Cut every other session of the test database (the watcher's and its log followers').
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (killed,) = cursor.fetchone()
    assert killed >= 1
    done = wait_run(run.pk, timeout=90)
    assert done.status == RunStatus.SUCCEEDED
    assert "one" in run_log_text(done.pk) and "two" in run_log_text(done.pk)
