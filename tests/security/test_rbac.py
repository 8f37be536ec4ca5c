"""K8X's own Kubernetes identity has exactly the documented permissions.

The identity (ServiceAccount k8x-system/k8x, installed by
deploy/local/k8x-identity.sh from deploy/helm/k8x/files/clusterroles.yaml) is
asked what it may do, with ``kubectl auth can-i --list --as=...``: cluster-wide,
in a project namespace K8X ensured itself, in kube-system and in k8x-system.
Anything beyond the rules in that file (minus what every authenticated identity
may do) fails, as does a table in deploy/README-rbac.md that disagrees with the
file. Specific escalations are checked one by one, some with K8X's real token.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import override_settings

from k8x_core import kube
from tests.cluster_fixtures import REPO_ROOT, KubeCluster, admin_namespace_delete

pytestmark = pytest.mark.cluster

SA = "system:serviceaccount:k8x-system:k8x"
# Same groups as K8X's ServiceAccount minus its namespace's, bound to nothing: what any identity may do.
NOBODY = "system:serviceaccount:default:k8x-rbac-test-nobody"
RULES = REPO_ROOT / "deploy" / "helm" / "k8x" / "files" / "clusterroles.yaml"
DOC = REPO_ROOT / "deploy" / "README-rbac.md"
LEASES = {("leases.coordination.k8s.io", "", v) for v in ("get", "create", "update")}

Perm = tuple[str, str, str]  # (resource[.group] or "url:<path>", resource name or "", verb)


def _rules() -> dict[str, set[Perm]]:
    """{ClusterRole name: its permissions} from the one rules file."""
    roles: dict[str, set[Perm]] = {}
    for doc in yaml.safe_load_all(RULES.read_text()):
        assert doc["kind"] == "ClusterRole", f"{RULES} holds only ClusterRoles, not {doc['kind']}"
        perms = roles.setdefault(doc["metadata"]["name"], set())
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for name in rule.get("resourceNames") or [""]:
                        for verb in rule["verbs"]:
                            assert "*" not in (group, resource, verb), f"wildcard in {doc['metadata']['name']}: {rule}"
                            perms.add((f"{resource}.{group}" if group else resource, name, verb))
    return roles


def _kubectl(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", cluster.admin_kubeconfig, "--request-timeout=20s", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(),
    )


@functools.cache
def _env() -> dict[str, str]:
    out = subprocess.run(
        [str(REPO_ROOT / "deploy" / "local" / "env.sh")], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    match = re.search(r"^export PATH=(\S+):\"\$PATH\"$", out, re.M)
    assert match, f"deploy/local/env.sh printed no PATH: {out!r}"
    return {**os.environ, "PATH": f"{match.group(1)}:{os.environ.get('PATH', '')}"}


_ROW = re.compile(r"^(\S*)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$")


def can_i_list(cluster: KubeCluster, user: str, namespace: str) -> set[Perm]:
    """What ``user`` may do in ``namespace`` (cluster-wide rules included), per kubectl auth can-i --list."""
    proc = _kubectl(cluster, "auth", "can-i", "--list", f"--as={user}", "-n", namespace)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and lines[0].split()[:1] == ["Resources"], proc.stdout
    perms: set[Perm] = set()
    for line in lines[1:]:
        if not line.strip():
            continue
        match = _ROW.match(line)
        assert match, f"unexpected line from kubectl auth can-i --list: {line!r}"
        resource, urls, names, verbs = match.groups()
        for verb in verbs.split():
            if resource:
                for name in names.split() or [""]:
                    perms.add((resource, name, verb))
            for url in urls.split():
                perms.add((f"url:{url}", "", verb))
    return perms


@pytest.fixture(scope="module")
def k8x_kubeconfig(kube_cluster: KubeCluster) -> str:
    """K8X's identity as installed from this checkout's rules file (idempotent)."""
    proc = subprocess.run(
        [str(REPO_ROOT / "deploy" / "local" / "k8x-identity.sh"), kube_cluster.admin_kubeconfig],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()[-1].strip()


@pytest.fixture
def as_k8x(k8x_kubeconfig: str) -> Iterator[None]:
    """In-process k8x_core.kube calls made with K8X's identity."""
    with override_settings(KUBECONFIG=k8x_kubeconfig):
        kube.api_client_reset()
        yield
    kube.api_client_reset()


@pytest.fixture(scope="module")
def project_namespace(k8x_kubeconfig: str, kube_api: Any) -> Iterator[str]:
    """A project namespace as K8X makes it: created by K8X's identity itself."""
    name = f"k8x-rbac-{secrets.token_hex(4)}"
    with override_settings(KUBECONFIG=k8x_kubeconfig):
        kube.api_client_reset()
        try:
            assert kube.managed_namespace_ensure(name=name, labels={"k8x.io/project": "rbac-test"})
        finally:
            kube.api_client_reset()
    try:
        yield name
    finally:
        admin_namespace_delete(kube_api, name)


def test_the_documented_table_is_the_rules_file() -> None:
    documented: set[tuple[str, Perm]] = set()
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] not in ("k8x", "k8x-tenant"):
            continue
        role, group, resources, verbs, _why = cells
        name_match = re.search(r"`([^`]+)` \(resourceName\)", resources)
        names = [name_match.group(1)] if name_match else [""]
        resources = re.sub(r"`[^`]+` \(resourceName\)", "", resources)
        for resource in (r.strip() for r in resources.split(",")):
            for verb in (v.strip() for v in verbs.split(",")):
                for name in names:
                    qualified = resource if group == "core" else f"{resource}.{group}"
                    documented.add((role, (qualified, name, verb)))
    in_file = {(role, perm) for role, perms in _rules().items() for perm in perms}
    assert documented == in_file, (
        f"only in {DOC.name}: {sorted(documented - in_file)}; only in {RULES.name}: {sorted(in_file - documented)}"
    )


@pytest.mark.parametrize("where", ["cluster-wide", "project", "kube-system", "k8x-system"])
def test_identity_can_do_exactly_the_documented_rules(
    where: str, kube_cluster: KubeCluster, k8x_kubeconfig: str, project_namespace: str
) -> None:
    rules = _rules()
    assert set(rules) == {"k8x", "k8x-tenant"}
    namespace, expected = {
        # `default` is a namespace K8X does not manage: only the cluster-wide role applies.
        "cluster-wide": ("default", rules["k8x"]),
        "project": (project_namespace, rules["k8x"] | rules["k8x-tenant"]),
        "kube-system": ("kube-system", rules["k8x"]),
        "k8x-system": ("k8x-system", rules["k8x"] | LEASES),
    }[where]
    baseline = can_i_list(kube_cluster, NOBODY, namespace)
    actual = can_i_list(kube_cluster, SA, namespace) - baseline
    assert actual - expected == set(), f"K8X may do more than documented in {namespace}"
    assert expected - actual == set(), f"K8X lacks documented permissions in {namespace}"


DENIED = [
    ("get", "secrets", "kube-system"),
    ("list", "secrets", "kube-system"),
    ("create", "secrets", "kube-system"),
    ("get", "secrets", "k8x-system"),
    ("list", "secrets", "{project}"),  # K8X writes Secrets but never reads them back
    ("get", "secrets", "{project}"),
    ("create", "jobs.batch", "kube-system"),
    ("create", "jobs.batch", "default"),
    ("create", "pods", "{project}"),
    ("create", "pods/exec", "{project}"),
    ("create", "pods/attach", "{project}"),
    ("create", "pods/portforward", "{project}"),
    ("get", "pods", "{project}"),
    ("list", "nodes", ""),
    ("get", "nodes", ""),
    ("get", "nodes/proxy", ""),
    ("create", "clusterroles.rbac.authorization.k8s.io", ""),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", ""),
    ("bind", "clusterroles.rbac.authorization.k8s.io/cluster-admin", ""),
    ("bind", "clusterroles.rbac.authorization.k8s.io/admin", ""),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
    ("create", "roles.rbac.authorization.k8s.io", "{project}"),
    ("delete", "rolebindings.rbac.authorization.k8s.io", "{project}"),
    ("delete", "namespaces", ""),
    ("patch", "namespaces", ""),
    ("update", "namespaces", ""),
    ("impersonate", "serviceaccounts", "kube-system"),
    ("create", "serviceaccounts/token", "kube-system"),
    ("create", "configmaps", "{project}"),
    ("create", "leases.coordination.k8s.io", "kube-system"),
]


@pytest.mark.parametrize(("verb", "resource", "namespace"), DENIED)
def test_specific_escalations_are_denied(
    verb: str, resource: str, namespace: str, kube_cluster: KubeCluster, k8x_kubeconfig: str, project_namespace: str
) -> None:
    ns = namespace.format(project=project_namespace)
    args = ["auth", "can-i", verb, resource, f"--as={SA}", *(["-n", ns] if ns else ["--all-namespaces"])]
    proc = _kubectl(kube_cluster, *args)
    assert proc.stdout.strip() == "no", (
        f"K8X may {verb} {resource} in {ns or 'the cluster'}: {proc.stdout}{proc.stderr}"
    )


def test_k8x_cannot_bind_another_role_even_in_its_own_namespace(as_k8x: None, project_namespace: str) -> None:
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "escalate"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [kube.identity_subject()],
    }
    with pytest.raises(kube.KubeInvalid) as exc:
        kube.call("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{project_namespace}/rolebindings", body=body)
    assert exc.value.status == 403, exc.value.message


def test_k8x_cannot_bind_its_tenant_role_in_kube_system(as_k8x: None) -> None:
    # The code refuses a namespace it does not manage ...
    with pytest.raises(kube.KubeInvalid, match="not managed by K8X"):
        kube.managed_namespace_ensure(name="kube-system")
    # ... and so does the cluster, to K8X's token (tenant-policy.yaml).
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "k8x-tenant"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "k8x-tenant"},
        "subjects": [kube.identity_subject()],
    }
    with pytest.raises(kube.KubeInvalid, match="k8x-tenant may be bound only in namespaces labelled") as exc:
        kube.call("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings", body=body)
    assert exc.value.status == 403


def test_the_identity_is_the_service_account_and_works_in_its_namespace(
    as_k8x: None, project_namespace: str, kube_api: Any
) -> None:
    assert kube.identity_subject() == {"kind": "ServiceAccount", "name": "k8x", "namespace": "k8x-system"}
    kube.managed_namespace_ensure(name=project_namespace)
    name = f"k8x-rbac-{secrets.token_hex(3)}"
    kube.secret_apply(namespace=project_namespace, name=name, string_data={"A": "1"})
    kube.secret_apply(namespace=project_namespace, name=name, string_data={"A": "2"})
    with pytest.raises(kube.KubeInvalid) as exc:  # written, never read back
        kube.secret_get(namespace=project_namespace, name=name)
    assert exc.value.status == 403
    assert kube.secret_delete(namespace=project_namespace, name=name)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": {"app.kubernetes.io/managed-by": "k8x"}},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "m", "image": "localhost:5000/k8x/busybox:1"}],
                }
            }
        },
    }
    kube.job_dry_run(namespace=project_namespace, job=job)
    kube.job_dry_run(namespace=f"k8x-rbac-missing-{secrets.token_hex(3)}", job=job)  # in the dry-run namespace
    binding = kube.call(
        "GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{project_namespace}/rolebindings/k8x-tenant"
    )
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "k8x", "namespace": "k8x-system"}]
    assert Path(kube.kubeconfig_path() or "").name == "k8x.kubeconfig"
    # The watcher's cluster-wide list + watch of K8X's Jobs and pods.
    selector = "app.kubernetes.io/managed-by=k8x"
    for kind, listing in (("jobs", kube.job_list), ("pods", kube.pod_list)):
        _items, rv = listing(namespace=None, label_selector=selector)
        path = kube.jobs_path(None) if kind == "jobs" else kube.pods_path(None)
        for _event in kube.watch(path=path, label_selector=selector, resource_version=rv, timeout_seconds=1):
            pass


def test_an_existing_tenant_binding_gets_k8x_added(as_k8x: None, kube_api: Any) -> None:
    """A second installation's binding is kept and K8X's subject added (rolebindings patch)."""
    from kubernetes import client  # lazily, like tests/cluster_fixtures.py

    name = f"k8x-rbac-{secrets.token_hex(4)}"
    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    namespace: Any = {"metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "k8x"}}}
    core.create_namespace(namespace)
    try:
        other = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "another-k8x"}
        binding: Any = {
            "metadata": {"name": "k8x-tenant"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "k8x-tenant"},
            "subjects": [other],
        }
        rbac.create_namespaced_role_binding(name, binding)
        assert not kube.managed_namespace_ensure(name=name)
        binding = kube_api.sanitize_for_serialization(rbac.read_namespaced_role_binding("k8x-tenant", name))
        assert binding["subjects"] == [other, kube.identity_subject()]
        kube.secret_apply(namespace=name, name="works", string_data={"A": "1"})
    finally:
        admin_namespace_delete(kube_api, name)
