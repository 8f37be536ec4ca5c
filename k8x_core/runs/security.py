"""What K8X adds to every pod for Pod Security (pure functions, no I/O).

Project namespaces carry the ``pod-security.kubernetes.io/*`` labels of the
project's level (``restricted`` unless a platform superuser lowered it to
``baseline``). Templates that leave security fields unset get
``restricted``-compliant values at Job build time, the way OpenShift's
restricted SCC assigns them: a non-root UID of the project's own
(``K8X_PROJECT_UID_BASE`` + project id, unless the template sets one),
``runAsNonRoot``, the ``RuntimeDefault`` seccomp profile, every capability
dropped and no privilege escalation. The service account token is never
mounted and a Job runs one pod at a time.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

RESTRICTED = "restricted"
BASELINE = "baseline"
LEVELS = (RESTRICTED, BASELINE)  # never "privileged"

PSA_PREFIX = "pod-security.kubernetes.io"
PSA_MODES = ("enforce", "warn", "audit")


def pod_security_labels(*, level: str) -> dict[str, str]:
    """The namespace labels of a Pod Security level (enforce, warn and audit, at ``latest``)."""
    if level not in LEVELS:
        raise ValueError(f"pod security level must be one of {', '.join(LEVELS)}, not {level!r}")
    labels: dict[str, str] = {}
    for mode in PSA_MODES:
        labels[f"{PSA_PREFIX}/{mode}"] = level
        labels[f"{PSA_PREFIX}/{mode}-version"] = "latest"
    return labels


def project_uid(*, project_id: int | None) -> int:
    """The UID a project's containers run as when their template sets none (stable per project)."""
    return int(settings.K8X_PROJECT_UID_BASE) + int(project_id or 0)


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in (pod_spec.get(key) or []) if isinstance(c, dict)]
    return out


def _mapping(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def security_defaults_apply(*, job: dict[str, Any], uid: int) -> None:
    """Fill in what the template left unset so the pod meets ``restricted``; force the rest."""
    spec = job["spec"]
    # One pod at a time: a run is one execution, and its log and exit code are one pod's.
    spec["parallelism"] = 1
    spec["completions"] = 1
    pod_spec = spec["template"]["spec"]
    pod_spec["automountServiceAccountToken"] = False
    pod_ctx = _mapping(pod_spec, "securityContext")
    containers = _containers(pod_spec)
    wants_root = pod_ctx.get("runAsUser") == 0 or pod_ctx.get("runAsNonRoot") is False
    for container in containers:
        own = container.get("securityContext")
        if isinstance(own, dict) and (own.get("runAsUser") == 0 or own.get("runAsNonRoot") is False):
            wants_root = True
    pod_ctx.setdefault("runAsUser", uid)
    if not wants_root:
        # Only a baseline project may ask for root; everywhere else the kubelet enforces non-root.
        pod_ctx.setdefault("runAsNonRoot", True)
    if not isinstance(pod_ctx.get("seccompProfile"), dict):
        pod_ctx["seccompProfile"] = {"type": "RuntimeDefault"}
    for container in containers:
        ctx = _mapping(container, "securityContext")
        if ctx.get("privileged") is not True:
            # The API refuses privileged with no escalation; Pod Security judges such a pod.
            ctx.setdefault("allowPrivilegeEscalation", False)
        caps = _mapping(ctx, "capabilities")
        drop = caps.get("drop")
        if not isinstance(drop, list):
            drop = []
        if "ALL" not in drop:
            caps["drop"] = [*drop, "ALL"]
