"""The chart deploy/helm/k8x: lint, render, and the rendered manifests
validated by the local cluster's API server (server-side dry run, in a
namespace that enforces Pod Security `restricted`)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml

from tests.cluster_fixtures import KubeCluster
from tests.deploy.helm.conftest import CHART, TEST_VALUES, Runner, kubectl_runner


def render(helm: Runner, *args: str, namespace: str = "k8x-system") -> list[dict[str, Any]]:
    out = helm("template", "k8x", str(CHART), "-n", namespace, *TEST_VALUES, *args)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def test_lint_is_clean(helm: Runner) -> None:
    out = helm("lint", "--strict", str(CHART), *TEST_VALUES)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


def test_missing_image_tag_is_refused_by_name(helm: Runner) -> None:
    out = helm("template", "k8x", str(CHART), "--set", "redis.image.tag=test")
    assert out.returncode != 0
    assert "image.tag is required" in out.stderr


def test_processes_security_and_leader_election(helm: Runner) -> None:
    docs = render(helm)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {
        f"k8x-{n}" for n in ("web", "hub", "worker", "watcher", "scheduler", "reconciler", "redis")
    }
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert c["resources"]["requests"] and c["resources"]["limits"], name
            assert c.get("readinessProbe") and c.get("livenessProbe"), name
    for name in ("watcher", "scheduler"):
        env = {e["name"]: e for e in deployments[f"k8x-{name}"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["K8X_LEADER_ELECTION"]["value"] == "true"
        assert env["K8X_LEASE_NAMESPACE"]["value"] == "k8x-system"
        assert env["K8X_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["K8X_HEALTH_PORT"]["value"] == "9100"
    hub_env = {
        e["name"]: e.get("value") for e in deployments["k8x-hub"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    # Apart from a `make up` K8X on the same broker (README: Install on your cluster).
    assert hub_env["K8X_HUB_GROUP"] == "k8x-hub-incluster" and hub_env["K8X_EVENTS_TOPIC"] != "k8x.events"
    assert hub_env["REDIS_URL"] == "redis://$(K8X_REDIS_SERVICE_HOST):$(K8X_REDIS_SERVICE_PORT)/0"
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "k8x"
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"} >= {"k8x", "k8x-tenant"}
    hooks = {
        d["kind"]: d["metadata"]["annotations"]["helm.sh/hook"]
        for d in docs
        if "helm.sh/hook" in d["metadata"].get("annotations", {})
    }
    assert hooks == {"Secret": "pre-install,pre-upgrade", "Job": "pre-install,pre-upgrade"}


def test_existing_secret_replaces_the_generated_one(helm: Runner) -> None:
    docs = render(helm, "--set", "secrets.existingSecret=mine")
    assert not [d for d in docs if d["kind"] == "Secret"]
    web = next(d for d in docs if d["metadata"]["name"] == "k8x-web" and d["kind"] == "Deployment")
    assert web["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "mine"}}]


@pytest.mark.cluster
def test_rendered_chart_passes_the_api_servers_dry_run(helm: Runner, kube_cluster: KubeCluster) -> None:
    kubectl = kubectl_runner(kube_cluster.admin_kubeconfig)
    ns = f"k8x-helmtest-{uuid.uuid4().hex[:6]}"
    out = kubectl("create", "namespace", ns)
    assert out.returncode == 0, out.stderr
    try:
        out = kubectl(
            "label",
            "namespace",
            ns,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        )
        assert out.returncode == 0, out.stderr
        # Node port 0: Kubernetes picks one (30080 may be taken by a `make deploy`).
        rendered = helm("template", "k8x", str(CHART), "-n", ns, *TEST_VALUES, "--set", "web.service.nodePort=0")
        assert rendered.returncode == 0, rendered.stderr
        out = kubectl("apply", "--dry-run=server", "-n", ns, "-f", "-", stdin=rendered.stdout)
        assert out.returncode == 0, out.stderr
        assert "PodSecurity" not in out.stderr, out.stderr
        applied = out.stdout
        for kind in (
            "deployment.apps/k8x-web",
            "job.batch/k8x-migrate",
            "networkpolicy.networking.k8s.io/k8x",
            "clusterrole.rbac.authorization.k8s.io/k8x",
            "role.rbac.authorization.k8s.io/k8x-leases",
        ):
            assert kind in applied, applied
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")
