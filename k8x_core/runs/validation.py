"""The one validator of a Service (PRODUCT.md, "Tenant isolation").

The console form, ``k8x_apply``, git sync and the launcher all call
``service_check`` (or ``template_check`` for a template alone) and get the
same answer: a list of ``Problem`` (field path in the Job, rule, message).
A path is the field's place in the batch/v1 Job the template stands for
(``spec.template.spec.containers[0].securityContext.privileged``), whatever
shape the template was written in.

K8X's policy, refused at every level: privileged containers, host namespaces,
``hostPath`` volumes, added capabilities, a ``procMount`` other than Default,
``nodeName``, a service account other than the project's (``default``),
Secrets other than the service's own, host ports, a mounted service account
token, more than one pod at a time, a custom ``schedulerName``, image pull
secrets other than K8X's own (``k8x-registry``), a ``nodeSelector`` or node
affinity that contradicts the project's node labels, tolerations other than
the project's own and ``K8X_ALLOWED_TOLERATIONS``. At the ``restricted`` level also: running
as root, privilege escalation, an unconfined seccomp profile. Each rule is one
function below; ``RULES`` lists them.
"""

from __future__ import annotations

import functools
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from k8x_core import kube
from k8x_core.models import Run, Service, TriggerKind
from k8x_core.runs import jobspec
from k8x_core.runs.defaults import (
    NO_PLACEMENT,
    PULL_SECRET_NAME,
    Placement,
    project_placement,
    project_run_defaults,
    toleration_normal,
)
from k8x_core.runs.security import LEVELS, RESTRICTED
from k8x_core.runs.templates import POD_SPEC_PATH, Problem, template_load

__all__ = [
    "RULES",
    "Problem",
    "service_check",
    "service_dry_run",
    "template_check",
]

PROJECT_SERVICE_ACCOUNT = "default"


@dataclass(frozen=True)
class Context:
    """What a rule needs besides the Job: whose Secret is the service's own, the level,
    the project's placement and the tolerations the platform allows (normal spellings)."""

    service_name: str
    level: str
    placement: Placement = NO_PLACEMENT
    allowed_tolerations: frozenset[str] = frozenset()


def allowed_tolerations() -> frozenset[str]:
    """K8X_ALLOWED_TOLERATIONS, in ``toleration_normal`` spelling."""
    value = settings.K8X_ALLOWED_TOLERATIONS
    return frozenset(toleration_normal(t) for t in (value if isinstance(value, list) else []))


# --- walking a pod spec ---------------------------------------------------------


def _pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def _containers(job: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, container) of every container, init container and ephemeral container."""
    pod_spec = _pod_spec(job)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        items = pod_spec.get(key)
        if not isinstance(items, list):
            continue
        for i, container in enumerate(items):
            if isinstance(container, dict):
                yield f"{POD_SPEC_PATH}.{key}[{i}]", container


def _security_contexts(job: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, securityContext) of the pod and of every container that has one."""
    pod_ctx = _pod_spec(job).get("securityContext")
    if isinstance(pod_ctx, dict):
        yield f"{POD_SPEC_PATH}.securityContext", pod_ctx
    for path, container in _containers(job):
        ctx = container.get("securityContext")
        if isinstance(ctx, dict):
            yield f"{path}.securityContext", ctx


def _volumes(job: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    items = _pod_spec(job).get("volumes")
    if isinstance(items, list):
        for i, volume in enumerate(items):
            if isinstance(volume, dict):
                yield f"{POD_SPEC_PATH}.volumes[{i}]", volume


def _secret_references(job: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(path, Secret name) of every Secret the pod names: volumes, projected sources, envFrom, secretKeyRef."""
    for path, volume in _volumes(job):
        secret = volume.get("secret")
        if isinstance(secret, dict):
            yield f"{path}.secret.secretName", secret.get("secretName")
        projected = volume.get("projected")
        sources = projected.get("sources") if isinstance(projected, dict) else None
        for j, source in enumerate(sources if isinstance(sources, list) else []):
            if isinstance(source, dict) and isinstance(source.get("secret"), dict):
                yield f"{path}.projected.sources[{j}].secret.name", source["secret"].get("name")
    for path, container in _containers(job):
        env_from = container.get("envFrom")
        for j, entry in enumerate(env_from if isinstance(env_from, list) else []):
            if isinstance(entry, dict) and isinstance(entry.get("secretRef"), dict):
                yield f"{path}.envFrom[{j}].secretRef.name", entry["secretRef"].get("name")
        env = container.get("env")
        for j, entry in enumerate(env if isinstance(env, list) else []):
            value_from = entry.get("valueFrom") if isinstance(entry, dict) else None
            if isinstance(value_from, dict) and isinstance(value_from.get("secretKeyRef"), dict):
                yield f"{path}.env[{j}].valueFrom.secretKeyRef.name", value_from["secretKeyRef"].get("name")


# --- the rules: one function each ------------------------------------------------------


def rule_privileged(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    for path, container in _containers(job):
        sc = container.get("securityContext")
        if isinstance(sc, dict) and sc.get("privileged") is True:
            yield Problem(f"{path}.securityContext.privileged", "privileged", "privileged containers are not allowed")


def rule_host_namespaces(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    pod_spec = _pod_spec(job)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key) is True:
            yield Problem(f"{POD_SPEC_PATH}.{key}", "host-namespaces", f"{key} shares the node's namespaces")


def rule_host_path(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    for path, volume in _volumes(job):
        if "hostPath" in volume:
            yield Problem(f"{path}.hostPath", "host-path", "hostPath volumes expose the node's files")


def rule_capabilities_add(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    for path, container in _containers(job):
        sc = container.get("securityContext")
        caps = sc.get("capabilities") if isinstance(sc, dict) else None
        if isinstance(caps, dict) and caps.get("add"):
            yield Problem(
                f"{path}.securityContext.capabilities.add",
                "capabilities-add",
                f"adding capabilities ({caps['add']!r}) is not allowed; K8X drops them all",
            )


def rule_proc_mount(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    for path, container in _containers(job):
        sc = container.get("securityContext")
        if isinstance(sc, dict) and sc.get("procMount") not in (None, "Default"):
            yield Problem(
                f"{path}.securityContext.procMount", "proc-mount", f"procMount must be Default, not {sc['procMount']!r}"
            )


def rule_node_name(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    if _pod_spec(job).get("nodeName"):
        yield Problem(f"{POD_SPEC_PATH}.nodeName", "node-name", "pods may not pick their node (nodeName)")


def rule_service_account(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    pod_spec = _pod_spec(job)
    for key in ("serviceAccountName", "serviceAccount"):
        value = pod_spec.get(key)
        if value not in (None, "", PROJECT_SERVICE_ACCOUNT):
            yield Problem(
                f"{POD_SPEC_PATH}.{key}",
                "service-account",
                f"only the project's service account ({PROJECT_SERVICE_ACCOUNT}) may be used, not {value!r}",
            )


def rule_service_account_token(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    if _pod_spec(job).get("automountServiceAccountToken") is True:
        yield Problem(
            f"{POD_SPEC_PATH}.automountServiceAccountToken",
            "service-account-token",
            "the service account token is never mounted in a K8X pod",
        )
    for path, volume in _volumes(job):
        projected = volume.get("projected")
        sources = projected.get("sources") if isinstance(projected, dict) else None
        for j, source in enumerate(sources if isinstance(sources, list) else []):
            if isinstance(source, dict) and "serviceAccountToken" in source:
                yield Problem(
                    f"{path}.projected.sources[{j}].serviceAccountToken",
                    "service-account-token",
                    "the service account token is never mounted in a K8X pod",
                )


def rule_foreign_secret(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    own = jobspec.service_secret_name(ctx.service_name)
    for path, name in _secret_references(job):
        if name != own:
            yield Problem(
                path,
                "foreign-secret",
                f"a service may only use its own Secret ({own}), not {name!r}; add secrets in K8X instead",
            )


def rule_host_port(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    for path, container in _containers(job):
        ports = container.get("ports")
        for j, port in enumerate(ports if isinstance(ports, list) else []):
            if isinstance(port, dict) and port.get("hostPort"):
                yield Problem(f"{path}.ports[{j}].hostPort", "host-port", "host ports are not allowed")


def rule_single_pod(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    spec = job["spec"]
    for key in ("parallelism", "completions"):
        if spec.get(key) not in (None, 1):
            yield Problem(f"spec.{key}", "single-pod", f"a run is one pod: {key} must be 1, not {spec[key]!r}")


def rule_restart_policy(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    value = _pod_spec(job).get("restartPolicy")
    if value not in (None, "Never"):
        yield Problem(
            f"{POD_SPEC_PATH}.restartPolicy",
            "restart-policy",
            f"K8X runs every pod with restartPolicy Never (retries are the Job's), not {value!r}",
        )


def rule_run_as_root(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    if ctx.level != RESTRICTED:
        return
    for path, sc in _security_contexts(job):
        if sc.get("runAsUser") == 0:
            yield Problem(
                f"{path}.runAsUser", "run-as-root", "running as root (UID 0) is not allowed at level restricted"
            )
        if sc.get("runAsNonRoot") is False:
            yield Problem(f"{path}.runAsNonRoot", "run-as-root", "runAsNonRoot must not be false at level restricted")


def rule_privilege_escalation(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    if ctx.level != RESTRICTED:
        return
    for path, container in _containers(job):
        sc = container.get("securityContext")
        if isinstance(sc, dict) and sc.get("allowPrivilegeEscalation") is True:
            yield Problem(
                f"{path}.securityContext.allowPrivilegeEscalation",
                "privilege-escalation",
                "allowPrivilegeEscalation must not be true at level restricted",
            )


def rule_seccomp(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    if ctx.level != RESTRICTED:
        return
    for path, sc in _security_contexts(job):
        profile = sc.get("seccompProfile")
        if isinstance(profile, dict) and profile.get("type") == "Unconfined":
            yield Problem(f"{path}.seccompProfile.type", "seccomp", "an Unconfined seccomp profile is not allowed")


def rule_scheduler_name(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    value = _pod_spec(job).get("schedulerName")
    if value not in (None, "", "default-scheduler"):
        yield Problem(
            f"{POD_SPEC_PATH}.schedulerName", "scheduler-name", f"pods use the cluster's scheduler, not {value!r}"
        )


def rule_image_pull_secrets(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    items = _pod_spec(job).get("imagePullSecrets")
    for i, item in enumerate(items if isinstance(items, list) else []):
        name = item.get("name") if isinstance(item, dict) else item
        if name != PULL_SECRET_NAME:
            yield Problem(
                f"{POD_SPEC_PATH}.imagePullSecrets[{i}]",
                "pull-secret",
                f"only K8X's own pull secret ({PULL_SECRET_NAME}) may be used, not {name!r}; "
                "add a registry login to the project's secrets instead",
            )


def _admits(expression: dict[str, Any], value: str) -> bool:
    """Whether a node selector requirement lets a node labelled ``value`` through."""
    operator = expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    if operator == "In":
        return value in values
    if operator == "NotIn":
        return value not in values
    if operator == "Exists":
        return True
    if operator in ("Gt", "Lt") and values:
        try:
            return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])
        except ValueError:
            return False
    return False


def _node_terms(pod_spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, requirement) of every node affinity expression on a label, required or preferred."""
    affinity = pod_spec.get("affinity")
    node = affinity.get("nodeAffinity") if isinstance(affinity, dict) else None
    if not isinstance(node, dict):
        return
    base = f"{POD_SPEC_PATH}.affinity.nodeAffinity"
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    terms = required.get("nodeSelectorTerms") if isinstance(required, dict) else None
    for i, term in enumerate(terms if isinstance(terms, list) else []):
        exprs = term.get("matchExpressions") if isinstance(term, dict) else None
        for j, expr in enumerate(exprs if isinstance(exprs, list) else []):
            if isinstance(expr, dict):
                yield (
                    f"{base}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}].matchExpressions[{j}]",
                    expr,
                )
    preferred = node.get("preferredDuringSchedulingIgnoredDuringExecution")
    for i, item in enumerate(preferred if isinstance(preferred, list) else []):
        pref = item.get("preference") if isinstance(item, dict) else None
        exprs = pref.get("matchExpressions") if isinstance(pref, dict) else None
        for j, expr in enumerate(exprs if isinstance(exprs, list) else []):
            if isinstance(expr, dict):
                yield (
                    f"{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference.matchExpressions[{j}]",
                    expr,
                )


def rule_node_placement(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    """The project's node labels are forced onto every pod: a template may narrow them, never leave them."""
    selector = ctx.placement.selector
    if not selector:
        return
    pod_spec = _pod_spec(job)
    own = pod_spec.get("nodeSelector")
    for key, value in own.items() if isinstance(own, dict) else []:
        if key in selector and str(value) != selector[key]:
            yield Problem(
                f"{POD_SPEC_PATH}.nodeSelector.{key}",
                "placement",
                f"the project's pods run on nodes with {key}={selector[key]}, not {value!r}",
            )
    for path, expr in _node_terms(pod_spec):
        key = expr.get("key")
        if key in selector and not _admits(expr, selector[key]):
            yield Problem(
                path, "placement", f"contradicts the project's node label {key}={selector[key]} (set by the platform)"
            )


def rule_tolerations(job: dict[str, Any], ctx: Context) -> Iterator[Problem]:
    items = _pod_spec(job).get("tolerations")
    allowed = set(ctx.placement.tolerations) | ctx.allowed_tolerations
    for i, item in enumerate(items if isinstance(items, list) else []):
        if toleration_normal(item) not in allowed:
            yield Problem(
                f"{POD_SPEC_PATH}.tolerations[{i}]",
                "toleration",
                "only the project's tolerations and K8X_ALLOWED_TOLERATIONS may be used, "
                f"not {json.dumps(item, sort_keys=True)}",
            )


Rule = Callable[[dict[str, Any], Context], Iterator[Problem]]

RULES: tuple[Rule, ...] = (
    rule_privileged,
    rule_host_namespaces,
    rule_host_path,
    rule_capabilities_add,
    rule_proc_mount,
    rule_node_name,
    rule_service_account,
    rule_service_account_token,
    rule_foreign_secret,
    rule_host_port,
    rule_single_pod,
    rule_restart_policy,
    rule_run_as_root,
    rule_privilege_escalation,
    rule_seccomp,
    rule_scheduler_name,
    rule_image_pull_secrets,
    rule_node_placement,
    rule_tolerations,
)


# --- entry points ----------------------------------------------------------------------


def template_check(
    *, text: str, service_name: str, level: str, placement: Placement = NO_PLACEMENT
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The Job a template stands for (None if it has problems) and every problem: structure, then policy."""
    if level not in LEVELS:
        raise ValueError(f"unknown pod security level {level!r}")
    job, problems = template_load(text)
    if job is None:
        return None, problems
    ctx = Context(
        service_name=service_name, level=level, placement=placement, allowed_tolerations=allowed_tolerations()
    )
    for rule in RULES:
        problems += list(rule(job, ctx))
    return (None if problems else job), problems


def retries_check(*, retries: Any) -> list[Problem]:
    cap = int(settings.K8X_MAX_RETRIES)
    if isinstance(retries, int) and retries > cap:
        return [Problem("retries", "retries-cap", f"at most {cap} retries (K8X_MAX_RETRIES), not {retries}")]
    return []


def service_check(
    *, name: str, job_template: str, image: str, retries: Any, level: str, placement: Placement = NO_PLACEMENT
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Every problem of a service's fields that decide what runs (the same for every entry point).

    ``placement``: the project's (``defaults.project_placement``)."""
    problems = retries_check(retries=retries)
    job: dict[str, Any] | None = None
    if job_template.strip():
        job, template_problems = template_check(text=job_template, service_name=name, level=level, placement=placement)
        problems += template_problems
    elif not image.strip():
        problems.append(Problem("image", "structure", "give an image, or a Job template"))
    return job, problems


class StoredService(Protocol):
    """What the re-check of a saved service reads: a ``Service`` or a launch read's record."""

    @property
    def name(self) -> str: ...

    @property
    def job_template(self) -> str: ...

    @property
    def image(self) -> str: ...

    @property
    def retries(self) -> int: ...

    @property
    def project(self) -> Any: ...


def service_check_stored(*, service: StoredService) -> list[Problem]:
    """The check of a saved service, at its project's level (the launcher re-checks before every launch)."""
    return list(
        _stored_check(
            service.name,
            service.job_template,
            service.image,
            service.retries,
            service.project.pod_security_level,
            int(settings.K8X_MAX_RETRIES),
            project_placement(project=service.project),
            json.dumps(settings.K8X_ALLOWED_TOLERATIONS, sort_keys=True),
        )
    )


@functools.lru_cache(maxsize=1024)
def _stored_check(
    name: str,
    job_template: str,
    image: str,
    retries: int,
    level: str,
    max_retries: int,
    placement: Placement,
    allowed: str,
) -> tuple[Problem, ...]:
    # The launch path checks the same few templates over and over: remember the
    # answer per input (the cap, the placement and the allowed tolerations are part
    # of the key, so a changed setting counts).
    _, problems = service_check(
        name=name, job_template=job_template, image=image, retries=retries, level=level, placement=placement
    )
    return tuple(problems)


def service_dry_run(*, service: Service, namespace: str) -> list[Problem]:
    """A server-side dry run of the Job the launcher would build for this (unsaved) service.

    The Job comes from ``jobspec.job_build``, the launcher's own function, so
    what is checked is what will run. Problems have rule ``cluster`` (the API
    server refused; its message) or ``cluster-unavailable`` (it could not be
    asked: nothing may be applied unchecked)."""
    run = Run(id=uuid.uuid4(), trigger_kind=TriggerKind.MANUAL, params={}, correlation_id="")
    try:
        build = jobspec.job_build(
            run=run,
            service=service,
            project_slug=service.project.slug if service.project_id else "",
            namespace=namespace,
            event=None,
            configs={},
            secret_keys=[],
            events_url=settings.K8X_EVENTS_URL,
            run_token=secrets.token_hex(8),
            ttl_seconds_after_finished=None,
            defaults=project_run_defaults(project=service.project if service.project_id else None),
        )
    except jobspec.JobSpecInvalid as exc:
        return [Problem("", "structure", str(exc))]
    build.job["metadata"]["name"] = f"k8x-validate-{secrets.token_hex(6)}"
    try:
        kube.job_dry_run(namespace=namespace, job=build.job)
    except kube.KubeInvalid as exc:
        return [Problem("", "cluster", f"the cluster refuses this Job: {exc}")]
    except kube.KubeError as exc:
        return [Problem("", "cluster-unavailable", f"the cluster could not check the Job: {exc}")]
    return []
