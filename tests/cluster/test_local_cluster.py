"""Acceptance tests of the local single-node cluster (deploy/local).

Each test runs real Jobs on the real kubelet/containerd of the local cluster,
with the locally built images (no internet registry involved).
"""

from __future__ import annotations

import http.server
import json
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_fixtures import (
    MANAGED_BY,
    KubeCluster,
    job_conditions,
    job_pods,
    wait_for_job,
    wait_for_pod,
    wait_until,
)

# The first test may have to build the cluster (kube_cluster runs build.sh):
# ~15 min on a cold cache, more than the default per-test timeout.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def core(kube_api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube_api)


@pytest.fixture(scope="module")
def batch(kube_api: Any) -> Any:
    from kubernetes import client

    return client.BatchV1Api(kube_api)


def make_job(
    batch: Any,
    namespace: str,
    image: str,
    command: list[str] | None = None,
    *,
    env: list[dict[str, Any]] | None = None,
    backoff_limit: int = 0,
    pod_spec: dict[str, Any] | None = None,
    **spec: Any,
) -> str:
    """Creates a one-container Job and returns its name."""
    name = f"t-{secrets.token_hex(4)}"
    container: dict[str, Any] = {"name": "main", "image": image, "env": env or []}
    if command is not None:
        container["command"] = command
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": dict(MANAGED_BY)},
                "spec": {"restartPolicy": "Never", "containers": [container], **(pod_spec or {})},
            },
            **spec,
        },
    }
    batch.create_namespaced_job(namespace, body)
    return name


def finished_pod_log(kube_api: Any, core: Any, namespace: str, job_name: str) -> tuple[Any, Any, str]:
    """(job, its single pod, that pod's log) once the Job has finished."""
    job = wait_for_job(kube_api, namespace, job_name)
    pods = job_pods(kube_api, namespace, job_name)
    assert len(pods) == 1, [p.metadata.name for p in pods]
    log = core.read_namespaced_pod_log(pods[0].metadata.name, namespace, container="main")
    return job, pods[0], log


def terminated(pod: Any) -> Any:
    statuses = pod.status.container_statuses or []
    return statuses[0].state.terminated if statuses else None


# --- Jobs, logs ---------------------------------------------------------------


def test_busybox_job_prints_its_env(kube_api, core, batch, kube_namespace, kube_cluster: KubeCluster):
    name = make_job(
        batch,
        kube_namespace,
        kube_cluster.busybox_image,
        ["sh", "-c", "env | sort; echo done"],
        env=[{"name": "K8X_EVENT_TYPE", "value": "com.acme.order.created"}],
    )
    job, pod, log = finished_pod_log(kube_api, core, kube_namespace, name)
    assert "Complete" in job_conditions(job)
    assert job.status.succeeded == 1
    lines = log.splitlines()
    assert "K8X_EVENT_TYPE=com.acme.order.created" in lines
    assert "KUBERNETES_SERVICE_HOST=10.96.0.1" in lines
    assert f"HOSTNAME={pod.metadata.name}" in lines
    assert lines[-1] == "done"
    assert terminated(pod).exit_code == 0


def test_log_follow_stream_delivers_lines_while_pod_runs(kube_api, core, batch, kube_namespace, kube_cluster):
    from kubernetes import watch

    name = make_job(
        batch,
        kube_namespace,
        kube_cluster.busybox_image,
        # 8 s of output: under a loaded CI the pod must still run when the test starts following it.
        ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 1; done"],
    )
    pod = wait_for_pod(
        kube_api,
        kube_namespace,
        name,
        lambda p: p.status.phase in ("Running", "Succeeded", "Failed"),
        timeout=60,
        what="the pod to start",
    )
    pod_name = pod.metadata.name
    w = watch.Watch()
    received: list[tuple[float, str]] = []
    phase_at_first_line = None
    for line in w.stream(
        core.read_namespaced_pod_log, name=pod_name, namespace=kube_namespace, container="main", follow=True
    ):
        received.append((time.monotonic(), line))
        if phase_at_first_line is None:
            first = core.read_namespaced_pod_status(pod_name, kube_namespace)
            phase_at_first_line = first.status.phase
            running_at_first_line = first.status.container_statuses[0].state.running is not None
    w.stop()
    # The stream ends when the container exits; the first line came while it still ran.
    assert [line for _, line in received] == [f"line-{i}" for i in range(1, 9)]
    assert phase_at_first_line == "Running"
    assert running_at_first_line
    assert received[-1][0] - received[0][0] > 2.0, "lines arrived all at once, not streamed"
    job = wait_for_job(kube_api, kube_namespace, name)
    assert "Complete" in job_conditions(job)


def test_python_image_runs_a_script(kube_api, core, batch, kube_namespace, kube_cluster):
    script = "import json, sys; print(json.dumps({'sum': sum(range(10)), 'py': sys.version_info[0]}))"
    name = make_job(batch, kube_namespace, kube_cluster.python_image, ["python3", "-c", script])
    job, _pod, log = finished_pod_log(kube_api, core, kube_namespace, name)
    assert "Complete" in job_conditions(job)
    assert json.loads(log.strip().splitlines()[-1]) == {"sum": 45, "py": 3}


# --- failures -----------------------------------------------------------------


def test_failing_command_fails_the_job_with_its_exit_code(kube_api, core, batch, kube_namespace, kube_cluster):
    name = make_job(batch, kube_namespace, kube_cluster.busybox_image, ["sh", "-c", "echo about to fail; exit 3"])
    job, pod, log = finished_pod_log(kube_api, core, kube_namespace, name)
    conds = job_conditions(job)
    assert "Failed" in conds and "Complete" not in conds
    assert conds["Failed"].reason == "BackoffLimitExceeded"
    assert terminated(pod).exit_code == 3
    assert terminated(pod).reason == "Error"
    assert log.strip() == "about to fail"


def test_active_deadline_ends_a_sleeping_job(kube_api, batch, kube_namespace, kube_cluster):
    started = time.monotonic()
    # `sleep` as PID 1 ignores SIGTERM: a short grace period keeps the test quick
    # (the Job turns Failed once its pod is gone).
    name = make_job(
        batch,
        kube_namespace,
        kube_cluster.busybox_image,
        ["sleep", "300"],
        pod_spec={"terminationGracePeriodSeconds": 1},
        activeDeadlineSeconds=2,
    )
    job = wait_for_job(kube_api, kube_namespace, name, timeout=90)
    conds = job_conditions(job)
    assert "Failed" in conds
    assert conds["Failed"].reason == "DeadlineExceeded"
    assert time.monotonic() - started < 30


def test_missing_image_is_reported_as_pull_error(kube_api, batch, kube_namespace, kube_cluster):
    name = make_job(batch, kube_namespace, f"{kube_cluster.registry}/k8x/nope:0", ["true"])

    def waiting_reason(pod: Any) -> str | None:
        statuses = pod.status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting.reason if waiting else None

    pod = wait_for_pod(
        kube_api,
        kube_namespace,
        name,
        lambda p: waiting_reason(p) in ("ErrImagePull", "ImagePullBackOff"),
        timeout=90,
        what="ErrImagePull/ImagePullBackOff",
    )
    assert waiting_reason(pod) in ("ErrImagePull", "ImagePullBackOff")
    assert "nope" in (pod.status.container_statuses[0].state.waiting.message or "")
    batch.delete_namespaced_job(name, kube_namespace, propagation_policy="Background")


# --- configuration and secrets -----------------------------------------------


def test_secret_reaches_the_environment_by_reference(kube_api, core, batch, kube_namespace, kube_cluster):
    value = f"s3cr3t-{secrets.token_hex(8)}"
    core.create_namespaced_secret(
        kube_namespace,
        {"metadata": {"name": "svc-secrets", "labels": dict(MANAGED_BY)}, "stringData": {"API_TOKEN": value}},
    )
    name = make_job(
        batch,
        kube_namespace,
        kube_cluster.busybox_image,
        ["sh", "-c", 'echo "token=$API_TOKEN"'],
        env=[{"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "svc-secrets", "key": "API_TOKEN"}}}],
    )
    job, _pod, log = finished_pod_log(kube_api, core, kube_namespace, name)
    assert "Complete" in job_conditions(job)
    assert log.strip() == f"token={value}"
    # The Job spec itself carries only the reference.
    stored = batch.read_namespaced_job(name, kube_namespace)
    assert value not in json.dumps(kube_api.sanitize_for_serialization(stored))


def test_ttl_after_finished_removes_the_job(kube_api, batch, kube_namespace, kube_cluster):
    from kubernetes.client.rest import ApiException

    # A few seconds of TTL, so the finished Job is seen before the controller removes it.
    name = make_job(batch, kube_namespace, kube_cluster.busybox_image, ["true"], ttlSecondsAfterFinished=4)
    seen_complete = False

    def gone() -> bool:
        nonlocal seen_complete
        try:
            job = batch.read_namespaced_job(name, kube_namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return True
        seen_complete = seen_complete or bool(job.status.succeeded)
        return False

    wait_until(gone, timeout=90, what="the ttl-after-finished controller to delete the Job")
    assert seen_complete, "the Job was deleted before it was seen to succeed"


# --- images built by the user -------------------------------------------------


def test_podman_built_image_runs_as_a_job(kube_api, core, batch, kube_namespace, kube_cluster, tmp_path: Path):
    podman = shutil.which("podman")
    assert podman, "podman is installed by deploy/local/build.sh"
    token = secrets.token_hex(6)
    image = f"{kube_cluster.registry}/k8x-test/hello-{token}:1"
    (tmp_path / "Containerfile").write_text(
        f"FROM {kube_cluster.busybox_image}\n"
        f'RUN echo "built by podman {token}" > /etc/k8x-hello\n'
        'CMD ["cat", "/etc/k8x-hello"]\n'
    )
    for cmd in (
        [podman, "build", "--network", "none", "-t", image, str(tmp_path)],
        [podman, "push", image],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}{proc.stderr}"
    try:
        name = make_job(batch, kube_namespace, image)
        job, _pod, log = finished_pod_log(kube_api, core, kube_namespace, name)
        assert "Complete" in job_conditions(job)
        assert log.strip() == f"built by podman {token}"
    finally:
        subprocess.run([podman, "rmi", "-f", image], capture_output=True, check=False)


# --- networking ---------------------------------------------------------------


def test_pod_uses_its_service_account_token_against_the_api(kube_api, core, batch, kube_namespace, kube_cluster):
    from kubernetes import client

    # Let the namespace's default ServiceAccount read pods, to prove the token
    # authenticates as that account (anonymous requests could not list pods).
    client.RbacAuthorizationV1Api(kube_api).create_namespaced_role_binding(
        kube_namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="default-view", labels=dict(MANAGED_BY)),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="default", namespace=kube_namespace)],
        ),
    )
    script = """
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
ctx = ssl.create_default_context(cafile=sa + "ca.crt")
headers = {"Authorization": "Bearer " + open(sa + "token").read().strip()}
ns = open(sa + "namespace").read().strip()
def get(path):
    with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), context=ctx, timeout=10) as r:
        return json.load(r)
print(json.dumps({
    "version": get("/version")["gitVersion"],
    "pods": [p["metadata"]["name"] for p in get("/api/v1/namespaces/%s/pods" % ns)["items"]],
    "me": os.environ["HOSTNAME"],
}))
"""
    name = make_job(batch, kube_namespace, kube_cluster.python_image, ["python3", "-c", script])
    job, pod, log = finished_pod_log(kube_api, core, kube_namespace, name)
    assert "Complete" in job_conditions(job), log
    result = json.loads(log.strip().splitlines()[-1])
    assert result["version"] == client.VersionApi(kube_api).get_code().git_version
    assert result["me"] == pod.metadata.name
    assert pod.metadata.name in result["pods"]


class _Recorder(http.server.BaseHTTPRequestHandler):
    token = ""
    clients: list[str] = []

    def do_GET(self) -> None:
        _Recorder.clients.append(self.client_address[0])
        body = f"hello-from-host {self.token} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def host_http_server(kube_cluster: KubeCluster) -> Iterator[tuple[int, type[_Recorder]]]:
    _Recorder.token = secrets.token_hex(6)
    _Recorder.clients = []
    server = http.server.ThreadingHTTPServer((kube_cluster.bridge_ip, 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], _Recorder
    finally:
        server.shutdown()
        server.server_close()


def test_pod_reaches_the_host_on_the_bridge_ip(kube_api, core, batch, kube_namespace, kube_cluster, host_http_server):
    port, recorder = host_http_server
    url = f"http://{kube_cluster.bridge_ip}:{port}/ping"
    # (Debian's busybox 1.35 wget crashes with -T; the Job's deadline bounds it instead.)
    name = make_job(
        batch, kube_namespace, kube_cluster.busybox_image, ["wget", "-q", "-O", "-", url], activeDeadlineSeconds=60
    )
    job, pod, log = finished_pod_log(kube_api, core, kube_namespace, name)
    assert "Complete" in job_conditions(job), log
    assert log.strip() == f"hello-from-host {recorder.token} /ping"
    assert recorder.clients == [pod.status.pod_ip]
    assert pod.status.pod_ip.startswith("10.244.0.")


def test_pod_network_has_no_route_off_the_machine(kube_api, core, batch, kube_namespace, kube_cluster):
    name = make_job(batch, kube_namespace, kube_cluster.busybox_image, ["ip", "route"])
    job, _pod, log = finished_pod_log(kube_api, core, kube_namespace, name)
    assert "Complete" in job_conditions(job)
    routes = sorted(line.split()[0] for line in log.strip().splitlines())
    assert routes == ["10.244.0.0/24", "10.96.0.0/24"], log
