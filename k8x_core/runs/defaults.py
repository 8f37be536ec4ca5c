"""A project's run defaults and placement: pure functions, no I/O.

Project owners set *defaults* (``default_resources``: requests/limits for
containers that set neither; ``default_timeout``: seconds, for services whose
own fields and template set no ``activeDeadlineSeconds``). A platform superuser
sets *placement*: the project's ``node_selector`` is forced onto every pod and
its ``tolerations`` are added to every pod. When the project has registry
logins, every pod gets K8X's own image pull secret (``k8x-registry``,
k8x_core.runs.registry).

``job_defaults_apply`` puts them into a built Job (called by
``jobspec.job_build``); the ``*_problems`` functions check values before they
are saved, naming the field (``default_resources.limits.memory``); the
validator (k8x_core.runs.validation) refuses templates that leave the
project's placement.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol

from k8x_core import kubevalues
from k8x_core.kubevalues import toleration_normal
from k8x_core.runs.templates import Problem

PULL_SECRET_NAME = "k8x-registry"  # noqa: S105  (a Secret name, not a value)

RULE = "defaults"


# --- checking values (each problem names its field) ---------------------------------------


def _problems(errors: list[kubevalues.Error]) -> list[Problem]:
    return [Problem(path, RULE, message) for path, message in errors]


def resources_problems(*, value: Any, field: str = "default_resources") -> list[Problem]:
    return _problems(kubevalues.resources_errors(value=value, field=field))


def timeout_problems(*, value: Any, field: str = "default_timeout") -> list[Problem]:
    return _problems(kubevalues.timeout_errors(value=value, field=field))


def node_selector_problems(*, value: Any, field: str = "node_selector") -> list[Problem]:
    return _problems(kubevalues.node_selector_errors(value=value, field=field))


def tolerations_problems(*, value: Any, field: str = "tolerations") -> list[Problem]:
    return _problems(kubevalues.tolerations_errors(value=value, field=field))


# --- what a project puts into its Jobs -------------------------------------------------------


class ProjectRunSettings(Protocol):
    """What the run defaults read of a project: a ``Project`` or a launch read's record."""

    @property
    def default_resources(self) -> Any: ...

    @property
    def default_timeout(self) -> int | None: ...

    @property
    def node_selector(self) -> Any: ...

    @property
    def tolerations(self) -> Any: ...


@dataclass(frozen=True)
class Placement:
    """A project's node labels and tolerations, hashable (the validator's cache keys on it)."""

    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[str, ...] = ()  # toleration_normal spellings

    @property
    def selector(self) -> dict[str, str]:
        return dict(self.node_selector)


NO_PLACEMENT = Placement()


def project_placement(*, project: ProjectRunSettings | None) -> Placement:
    if project is None:
        return NO_PLACEMENT
    selector = project.node_selector if isinstance(project.node_selector, dict) else {}
    tolerations = project.tolerations if isinstance(project.tolerations, list) else []
    return Placement(
        node_selector=tuple(sorted((str(k), str(v)) for k, v in selector.items())),
        tolerations=tuple(sorted({toleration_normal(t) for t in tolerations})),
    )


@dataclass(frozen=True)
class RunDefaults:
    """What ``job_defaults_apply`` puts into every Job of a project."""

    resources: dict[str, Any] = field(default_factory=dict)
    timeout: int | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    pull_secret: str | None = None


def project_run_defaults(*, project: ProjectRunSettings | None, pull_secret: bool = False) -> RunDefaults:
    """The project's run defaults; ``pull_secret``: the project has registry logins."""
    if project is None:
        return RunDefaults()
    return RunDefaults(
        resources=dict(project.default_resources or {}) if isinstance(project.default_resources, dict) else {},
        timeout=project.default_timeout or None,
        node_selector=dict(project.node_selector or {}) if isinstance(project.node_selector, dict) else {},
        tolerations=list(project.tolerations or []) if isinstance(project.tolerations, list) else [],
        pull_secret=PULL_SECRET_NAME if pull_secret else None,
    )


def _has_resources(container: dict[str, Any]) -> bool:
    resources = container.get("resources")
    return isinstance(resources, dict) and bool(resources.get("requests") or resources.get("limits"))


def job_defaults_apply(*, job: dict[str, Any], defaults: RunDefaults) -> None:
    """Put the project's defaults and placement into a built Job (in place).

    The service's own values win for resources and the timeout; the project's
    node labels win over the template's (the validator refuses a template that
    contradicts them, so this only fills them in); tolerations are added."""
    spec = job["spec"]
    pod_spec = spec["template"]["spec"]
    if defaults.timeout and not spec.get("activeDeadlineSeconds"):
        spec["activeDeadlineSeconds"] = int(defaults.timeout)
    if defaults.resources:
        for key in ("initContainers", "containers"):
            for container in pod_spec.get(key) or []:
                if isinstance(container, dict) and not _has_resources(container):
                    own: dict[str, Any] = container.get("resources") or {}
                    container["resources"] = {**own, **copy.deepcopy(defaults.resources)}
    if defaults.node_selector:
        own_selector = pod_spec.get("nodeSelector") if isinstance(pod_spec.get("nodeSelector"), dict) else {}
        pod_spec["nodeSelector"] = {**own_selector, **defaults.node_selector}
    if defaults.tolerations:
        own_tolerations = pod_spec.get("tolerations") if isinstance(pod_spec.get("tolerations"), list) else []
        present = {toleration_normal(t) for t in own_tolerations}
        added = [copy.deepcopy(t) for t in defaults.tolerations if toleration_normal(t) not in present]
        pod_spec["tolerations"] = [*own_tolerations, *added]
    if defaults.pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": defaults.pull_secret}]
