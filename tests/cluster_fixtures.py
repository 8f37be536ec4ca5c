"""Pytest plugin for tests that need the local Kubernetes cluster.

Loaded from ``tests/conftest.py`` (``pytest_plugins``). Fixtures:

- ``kube_cluster`` (session): the cluster to use, with two identities:
  ``kubeconfig`` is K8X's own (what K8X code under test and the processes tests
  start use) and ``admin_kubeconfig`` the cluster admin's (test fixtures only:
  namespaces, cleanup, reading what K8X wrote). When ``KUBECONFIG`` is set it is
  K8X's, and ``K8X_TEST_ADMIN_KUBECONFIG`` (default: the same file) the admin's,
  as ``deploy/test.sh`` sets them; otherwise ``deploy/local/build.sh``,
  ``deploy/local/start.sh`` and ``deploy/local/k8x-identity.sh`` run (idempotent,
  warm in seconds) and their kubeconfigs are used.
- ``kube_api`` (session): a ``kubernetes.client.ApiClient`` for that cluster, as admin.
- ``kube_namespace`` (module): a fresh namespace ``k8x-test-<random>`` labelled
  ``app.kubernetes.io/managed-by=k8x`` whose ``default`` ServiceAccount exists;
  deleted afterwards.

Helpers for Job-based tests (``wait_for_job``, ``job_pods``, ``wait_for_pod``)
live here too so that other test packages can reuse them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from k8x_core import kube

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_LOCAL = REPO_ROOT / "deploy" / "local"

BRIDGE_IP = "10.244.0.1"
REGISTRY = "localhost:5000"
BUSYBOX_IMAGE = f"{REGISTRY}/k8x/busybox:1"
PYTHON_IMAGE = f"{REGISTRY}/k8x/python:3"
MANAGED_BY = {"app.kubernetes.io/managed-by": "k8x"}


@dataclass(frozen=True)
class KubeCluster:
    """Where the cluster is and what it offers to tests."""

    kubeconfig: str  # K8X's own least-privilege identity
    started_here: bool
    admin_kubeconfig: str  # the cluster admin, for test fixtures only
    bridge_ip: str = BRIDGE_IP  # the host as pods see it (K8X's event endpoint lives here)
    registry: str = REGISTRY  # plain-HTTP registry that podman pushes to and the kubelet pulls from
    busybox_image: str = BUSYBOX_IMAGE
    python_image: str = PYTHON_IMAGE

    def __getitem__(self, key: str) -> Any:  # dict-style access: cluster["kubeconfig"]
        return getattr(self, key)


def _run_script(script: Path, timeout: float, *args: str) -> str:
    try:
        proc = subprocess.run(
            [str(script), *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"{script} did not finish in {timeout:.0f}s:\n{stderr[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"{script} failed with exit code {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return proc.stdout.strip()


@pytest.fixture(scope="session")
def kube_cluster() -> KubeCluster:
    """The local cluster: $KUBECONFIG if set, else build + start deploy/local."""
    env_kubeconfig = os.environ.get("KUBECONFIG")
    if env_kubeconfig:
        admin = os.environ.get("K8X_TEST_ADMIN_KUBECONFIG") or env_kubeconfig
        return KubeCluster(kubeconfig=env_kubeconfig, started_here=False, admin_kubeconfig=admin)
    if os.geteuid() != 0:
        pytest.fail("the local cluster needs root to start (containerd, kubelet); or set KUBECONFIG")
    _run_script(DEPLOY_LOCAL / "build.sh", timeout=1800)
    out = _run_script(DEPLOY_LOCAL / "start.sh", timeout=300)
    admin = out.splitlines()[-1].strip()
    assert Path(admin).is_file(), f"start.sh printed no kubeconfig path: {out!r}"
    out = _run_script(DEPLOY_LOCAL / "k8x-identity.sh", 120, admin)
    kubeconfig = out.splitlines()[-1].strip()
    assert Path(kubeconfig).is_file(), f"k8x-identity.sh printed no kubeconfig path: {out!r}"
    return KubeCluster(kubeconfig=kubeconfig, started_here=True, admin_kubeconfig=admin)


@pytest.fixture(scope="session")
def kube_api(kube_cluster: KubeCluster) -> Iterator[Any]:
    """kubernetes.client.ApiClient for the local cluster, as the cluster admin."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=kube_cluster.admin_kubeconfig)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def cluster_settings(settings: Any, kube_cluster: KubeCluster) -> Any:
    """Django settings for code under test that talks to the local cluster as K8X
    (its own identity), with Jobs kept long enough to be looked at."""
    settings.KUBECONFIG = kube_cluster.kubeconfig
    settings.K8X_JOB_TTL_SECONDS = 600
    kube.api_client_reset()
    return settings


@pytest.fixture(scope="module")
def kube_namespace(kube_api: Any) -> Iterator[str]:
    """A fresh namespace with its default ServiceAccount; deleted afterwards."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    name = f"k8x-test-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(MANAGED_BY))))
    try:
        wait_until(
            lambda: _exists(lambda: core.read_namespaced_service_account("default", name)),
            timeout=60,
            what=f"ServiceAccount {name}/default",
        )
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as exc:  # already gone is fine
            if exc.status != 404:
                raise


# --- helpers -----------------------------------------------------------------


def _exists(read: Callable[[], Any]) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Polls predicate until it returns a truthy value (returned) or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def job_conditions(job: Any) -> dict[str, Any]:
    """{condition type: condition} of the True conditions of a Job."""
    return {c.type: c for c in (job.status.conditions or []) if c.status == "True"}


def wait_for_job(kube_api: Any, namespace: str, name: str, timeout: float = 120) -> Any:
    """Waits until the Job is Complete or Failed and returns it."""
    from kubernetes import client

    batch = client.BatchV1Api(kube_api)

    def finished() -> Any:
        job = batch.read_namespaced_job_status(name, namespace)
        conds = job_conditions(job)
        return job if ("Complete" in conds or "Failed" in conds) else None

    return wait_until(finished, timeout, f"Job {namespace}/{name} to finish")


def job_pods(kube_api: Any, namespace: str, job_name: str) -> list[Any]:
    from kubernetes import client

    pods = client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}"
    )
    return sorted(pods.items, key=lambda p: p.metadata.creation_timestamp)


def wait_for_pod(
    kube_api: Any, namespace: str, job_name: str, predicate: Callable[[Any], bool], timeout: float, what: str
) -> Any:
    """Waits until a pod of the Job satisfies predicate and returns it."""

    def match() -> Any:
        for pod in job_pods(kube_api, namespace, job_name):
            if predicate(pod):
                return pod
        return None

    return wait_until(match, timeout, what)


def admin_secret_read(kube_api: Any, namespace: str, name: str) -> dict[str, Any]:
    """A Secret as the API returns it (base64 ``data``), read as admin: K8X's own
    identity may write Secrets but never read them back."""
    from kubernetes import client

    secret = client.CoreV1Api(kube_api).read_namespaced_secret(name, namespace)
    result: dict[str, Any] = kube_api.sanitize_for_serialization(secret)
    return result


def admin_namespace_delete(kube_api: Any, name: str) -> None:
    """Delete a namespace as admin (cleanup; K8X's identity may not delete namespaces)."""
    from kubernetes import client  # lazily, like the fixtures above: only cluster tests need it
    from kubernetes.client.rest import ApiException

    try:
        client.CoreV1Api(kube_api).delete_namespace(name, propagation_policy="Background")
    except ApiException as exc:  # already gone is fine
        if exc.status != 404:
            raise


def admin_job_exists(kube_api: Any, namespace: str, name: str) -> bool:
    """Whether a Job exists, asked as admin (K8X's identity has rights only in namespaces it bound)."""
    from kubernetes import client  # lazily, like the fixtures above: only cluster tests need it
    from kubernetes.client.rest import ApiException

    try:
        client.BatchV1Api(kube_api).read_namespaced_job(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def admin_lease_namespace_create(kube_api: Any, name: str, subject: dict[str, str]) -> None:
    """A namespace where ``subject`` (K8X's identity) may hold Leases, made as admin:
    what the Helm chart and deploy/local/k8x-identity.sh grant in K8X's own namespace."""
    from kubernetes import client  # lazily, like the fixtures above: only cluster tests need it

    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    rule = client.V1PolicyRule(
        api_groups=["coordination.k8s.io"], resources=["leases"], verbs=["get", "create", "update"]
    )
    rbac.create_namespaced_role(name, client.V1Role(metadata=client.V1ObjectMeta(name="k8x-leases"), rules=[rule]))
    who = client.RbacV1Subject(
        kind=subject["kind"],
        name=subject["name"],
        namespace=subject.get("namespace"),
        api_group=subject.get("apiGroup"),
    )
    binding = client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="k8x-leases"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="k8x-leases"),
        subjects=[who],
    )
    rbac.create_namespaced_role_binding(name, binding)
