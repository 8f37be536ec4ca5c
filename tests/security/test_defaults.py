"""The restricted defaults K8X fills in at Job build time (a pure function)."""

from __future__ import annotations

from typing import Any

import pytest

from k8x_core.runs.security import pod_security_labels, security_defaults_apply


def _job(pod_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": pod_spec}, **spec}}


def test_unset_fields_get_restricted_values_and_the_rest_is_forced() -> None:
    job = _job({"containers": [{"name": "a", "image": "i"}], "initContainers": [{"name": "b", "image": "i"}]})
    job["spec"]["parallelism"] = 5
    security_defaults_apply(job=job, uid=100042)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsUser": 100042,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (1, 1)
    for container in pod["containers"] + pod["initContainers"]:
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_what_the_template_sets_is_kept() -> None:
    job = _job(
        {
            "securityContext": {"runAsUser": 1234, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}},
            "containers": [{"name": "a", "image": "i", "securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}],
        }
    )
    security_defaults_apply(job=job, uid=100042)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 1234
    assert pod["securityContext"]["seccompProfile"]["type"] == "Localhost"
    assert pod["containers"][0]["securityContext"]["capabilities"]["drop"] == ["NET_RAW", "ALL"]


def test_a_baseline_template_asking_for_root_is_not_forced_non_root() -> None:
    job = _job({"containers": [{"name": "a", "image": "i", "securityContext": {"runAsUser": 0}}]})
    security_defaults_apply(job=job, uid=100042)
    assert "runAsNonRoot" not in job["spec"]["template"]["spec"]["securityContext"]


def test_namespace_labels_of_each_level() -> None:
    assert pod_security_labels(level="restricted") == {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "latest",
    }
    assert set(pod_security_labels(level="baseline").values()) == {"baseline", "latest"}
    with pytest.raises(ValueError, match="not 'privileged'"):
        pod_security_labels(level="privileged")
