"""A project's namespace as K8X manages it: Pod Security labels, ResourceQuota, LimitRange.

``project_namespace_ensure`` is called before every launch and whenever a
superuser changes a project's level or quotas. It is idempotent (labels are
patched onto an existing namespace, the quota objects are server-side
applied) and cheap when nothing changed (what was applied is remembered per
process).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Protocol

from django.conf import settings

from k8x_core import kube
from k8x_core.runs.jobspec import LABEL_PROJECT
from k8x_core.runs.security import pod_security_labels

QUOTA_NAME = "k8x-quota"
LIMITS_NAME = "k8x-limits"


class ProjectFields(Protocol):
    """What a namespace needs of a project: a ``Project`` or a launch read's record."""

    @property
    def slug(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def pod_security_level(self) -> str: ...

    @property
    def quota(self) -> Any: ...

    @property
    def limits(self) -> Any: ...


_applied_lock = threading.Lock()
_applied: dict[str, str] = {}


def project_quota(*, project: ProjectFields) -> dict[str, str]:
    """The project's ResourceQuota hard limits: K8X_PROJECT_QUOTA with the project's overrides."""
    return {str(k): str(v) for k, v in {**settings.K8X_PROJECT_QUOTA, **(project.quota or {})}.items()}


def project_limits(*, project: ProjectFields) -> dict[str, dict[str, str]]:
    """The project's per-container LimitRange item: K8X_PROJECT_LIMITS with the project's overrides, per key."""
    merged: dict[str, dict[str, str]] = {}
    overrides: dict[str, Any] = project.limits or {}
    for key in sorted({*settings.K8X_PROJECT_LIMITS, *overrides}):
        values = {**(settings.K8X_PROJECT_LIMITS.get(key) or {}), **(overrides.get(key) or {})}
        merged[key] = {str(k): str(v) for k, v in values.items()}
    return merged


def project_namespace_labels(*, project: ProjectFields) -> dict[str, str]:
    return {LABEL_PROJECT: project.slug, **pod_security_labels(level=project.pod_security_level)}


def project_namespace_ensure(*, project: ProjectFields, force: bool = False) -> bool:
    """Make the project's namespace exist with its labels, quota and limits. True when written."""
    labels = project_namespace_labels(project=project)
    quota = project_quota(project=project)
    limits = project_limits(project=project)
    digest = hashlib.sha256(json.dumps([labels, quota, limits], sort_keys=True).encode()).hexdigest()
    with _applied_lock:
        if not force and _applied.get(project.namespace) == digest:
            return False
    if force:
        kube.namespace_forget(name=project.namespace)
    kube.managed_namespace_ensure(name=project.namespace, labels=labels)
    kube.limitrange_apply(namespace=project.namespace, name=LIMITS_NAME, container=limits)
    kube.resourcequota_apply(namespace=project.namespace, name=QUOTA_NAME, hard=quota)
    with _applied_lock:
        _applied[project.namespace] = digest
    return True


def project_namespace_forget(*, project: ProjectFields) -> None:
    """Forget what was applied (after the namespace was deleted)."""
    with _applied_lock:
        _applied.pop(project.namespace, None)
    kube.namespace_forget(name=project.namespace)
