"""Every example's deployment.yaml fits Pod Security `restricted`: its pod is admitted
by the API server (server-side dry run) in a namespace that enforces it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.examples.conftest import REPO

pytestmark = pytest.mark.cluster

TEMPLATES = sorted((REPO / "examples").glob("**/deployment.yaml"))


@pytest.fixture(scope="module")
def restricted_namespace(kube_api: Any, kube_namespace: str) -> str:
    client.CoreV1Api(kube_api).patch_namespace(
        kube_namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    return kube_namespace


def pod_of(path: Path) -> Any:  # a Pod body; the client accepts a dict as well as a V1Pod
    job = yaml.safe_load(path.read_text())
    assert job["kind"] == "Job"
    spec = copy.deepcopy(job["spec"]["template"]["spec"])
    spec["restartPolicy"] = "Never"  # as K8X sets it
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "restricted-check"}, "spec": spec}


def test_every_example_has_a_template() -> None:
    names = {p.parent.name for p in TEMPLATES}
    assert {"shell-hello", "python-hello", "node-hello", "go-hello", "take-order", "ship-order"} <= names


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.parent.name for p in TEMPLATES])
def test_template_is_admitted_under_restricted(path: Path, kube_api: Any, restricted_namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(restricted_namespace, pod_of(path), dry_run="All")


def test_the_check_has_teeth(kube_api: Any, restricted_namespace: str) -> None:
    pod = pod_of(TEMPLATES[0])
    del pod["spec"]["securityContext"]
    for container in pod["spec"]["containers"]:
        container.pop("securityContext", None)
    with pytest.raises(ApiException) as info:
        client.CoreV1Api(kube_api).create_namespaced_pod(restricted_namespace, pod, dry_run="All")
    assert info.value.status == 403 and "PodSecurity" in str(info.value.body)
