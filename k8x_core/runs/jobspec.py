"""Building a run's Kubernetes Job: pure functions, no I/O.

The Job comes from the service's simple fields (image, command, args,
resources) or from its Job template (``deployment.yaml``: a ``batch/v1`` Job,
a Pod, or a Pod template). K8X then sets, whatever the template says:

- the name ``k8x-run-<run id hex>`` (deterministic: a repeated launch is a 409),
  the K8X labels and annotations on the Job and its pod template;
- ``restartPolicy: Never``, ``backoffLimit`` = retries, one pod at a time,
  no service account token, and ``restricted``-compliant security defaults
  where the template leaves them unset (``security.security_defaults_apply``);
  ``activeDeadlineSeconds`` = timeout (when the service has one; else the
  template's, else the project's default timeout), the project's default
  resources, node labels, tolerations and image pull secret
  (``defaults.job_defaults_apply``),
  ``ttlSecondsAfterFinished`` = K8X_JOB_TTL_SECONDS;
- the container contract's environment in every container (and init
  container), placed first so that the template's own variables and args can
  refer to them with ``$(K8X_...)``; a template variable of the same name as a
  contract variable is replaced by K8X's.

Secrets never appear as values: each secret key is a ``secretKeyRef`` to the
service's Kubernetes Secret (``k8x-svc-<service>``), and ``K8X_RUN_TOKEN`` a
``secretKeyRef`` to the run's own Secret (``k8x-run-<hex>``, which also holds
``event.json`` when the event is over 64 KiB and is mounted at
``/var/run/k8x``).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from k8x_core.models import run_job_name
from k8x_core.runs.defaults import RunDefaults, job_defaults_apply
from k8x_core.runs.security import project_uid, security_defaults_apply
from k8x_core.runs.templates import template_load

EVENT_INLINE_LIMIT = 64 * 1024
EVENT_MOUNT_DIR = "/var/run/k8x"
EVENT_FILE_KEY = "event.json"
EVENT_FILE_PATH = f"{EVENT_MOUNT_DIR}/{EVENT_FILE_KEY}"
EVENT_VOLUME = "k8x-event"
RUN_TOKEN_KEY = "K8X_RUN_TOKEN"  # noqa: S105  (a key name, not a value)

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PROJECT = "k8x.io/project"
LABEL_SERVICE = "k8x.io/service"
LABEL_RUN_ID = "k8x.io/run-id"
ANNOTATION_EVENT_ID = "k8x.io/event-id"
ANNOTATION_CORRELATION_ID = "k8x.io/correlation-id"
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}=k8x"


class RunFields(Protocol):
    """What a Job needs of a run: a ``Run`` or a launch read's record
    (``k8x_core.runs.launchread``)."""

    @property
    def id(self) -> Any: ...

    @property
    def trigger_kind(self) -> str: ...

    @property
    def correlation_id(self) -> str: ...

    @property
    def params(self) -> Any: ...


class ServiceFields(Protocol):
    """What a Job needs of a service: a ``Service`` or a launch read's record."""

    @property
    def project_id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def image(self) -> str: ...

    @property
    def command(self) -> Any: ...

    @property
    def args(self) -> Any: ...

    @property
    def resources(self) -> Any: ...

    @property
    def job_template(self) -> str: ...

    @property
    def timeout_seconds(self) -> int | None: ...

    @property
    def retries(self) -> int: ...


class EventFields(Protocol):
    """What the contract needs of an event: an ``Event`` or a launch read's record."""

    @property
    def ce_id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def subject(self) -> str: ...

    @property
    def time(self) -> datetime | None: ...

    @property
    def payload(self) -> Any: ...


class JobSpecInvalid(ValueError):
    """The service's template cannot become a Job; the message says why."""


def service_secret_name(service_name: str) -> str:
    return f"k8x-svc-{service_name}"


def run_secret_name(run_id: Any) -> str:
    # Same name as the Job: a different kind, and one glance ties them together.
    return run_job_name(run_id)


def param_env_name(key: str) -> str:
    """``K8X_PARAM_<NAME>``: NAME upper-cased, every character other than A-Z, 0-9, _ becomes _."""
    return "K8X_PARAM_" + re.sub(r"[^A-Z0-9_]", "_", key.upper())


def param_env_value(value: Any) -> str | None:
    """The text of a top-level scalar of ``data`` (JSON spelling for numbers,
    booleans and null); None for objects and arrays, which are not scalars."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def params_env(data: Any) -> list[tuple[str, str]]:
    """The ``K8X_PARAM_*`` variables of an event's data (sorted; on a name clash after
    upper-casing, the key that sorts last wins)."""
    if not isinstance(data, dict):
        return []
    out: dict[str, str] = {}
    for key in sorted(data, key=str):
        value = param_env_value(data[key])
        if value is not None:
            out[param_env_name(str(key))] = value
    return sorted(out.items())


def json_compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=False)


def template_parse(text: str) -> dict[str, Any]:
    """A service's ``deployment.yaml`` as a batch/v1 Job dict (``templates.template_load``'s shapes):
    a fresh dict on every call, the caller may change it."""
    job, message = _template_parsed(text)
    if job is None:
        raise JobSpecInvalid(message)
    return copy.deepcopy(job)


@functools.lru_cache(maxsize=64)
def _template_parsed(text: str) -> tuple[dict[str, Any] | None, str]:
    # A launch parses its service's template again and again: YAML is parsed
    # once per text (never handed out: template_parse gives each caller a copy).
    job, problems = template_load(text)
    if job is None:
        return None, "job template: " + "; ".join(str(p) for p in problems)
    return job, ""


@dataclass(frozen=True)
class EventView:
    """What the contract needs of an event (or of its absence, for manual runs)."""

    id: str = ""
    type: str = ""
    source: str = ""
    subject: str = ""
    time: str = ""
    structured: dict[str, Any] | None = None

    @classmethod
    def of(cls, event: EventFields | None) -> EventView:
        if event is None:
            return cls()
        payload = event.payload if isinstance(event.payload, dict) else {}
        time = payload.get("time") or (event.time.isoformat().replace("+00:00", "Z") if event.time else "")
        return cls(
            id=event.ce_id or str(payload.get("id", "")),
            type=event.type or str(payload.get("type", "")),
            source=event.source or str(payload.get("source", "")),
            subject=event.subject or str(payload.get("subject", "") or ""),
            time=str(time),
            structured=payload or None,
        )


@dataclass
class JobBuild:
    """A built Job and what its run Secret must hold."""

    job: dict[str, Any]
    run_secret_data: dict[str, str] = field(default_factory=dict)
    event_in_file: bool = False


# The container contract's K8X_ variables (PRODUCT.md), in the order a Job gets
# them; K8X_EVENT_FILE replaces K8X_EVENT when the event is over 64 KiB.
CONTRACT_VARIABLES = (
    "K8X_RUN_ID",
    "K8X_SERVICE",
    "K8X_PROJECT",
    "K8X_TRIGGER",
    "K8X_CORRELATION_ID",
    "K8X_EVENT_ID",
    "K8X_EVENT_TYPE",
    "K8X_EVENT_SOURCE",
    "K8X_EVENT_SUBJECT",
    "K8X_EVENT_TIME",
    "K8X_EVENT",
    "K8X_EVENT_FILE",
    "K8X_PARAMS",
    "K8X_EVENTS_URL",
    "K8X_RUN_TOKEN",
)


def _env_value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _env_secret(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def contract_env(
    *,
    run: RunFields,
    service: ServiceFields,
    project_slug: str,
    event: EventView,
    configs: dict[str, str],
    secret_keys: list[str],
    events_url: str,
) -> tuple[list[dict[str, Any]], bool, str]:
    """The contract's environment (as Kubernetes env entries), whether the event
    goes in a file, and the event's structured JSON."""
    event_json = json_compact(event.structured) if event.structured is not None else "null"
    large = len(event_json.encode()) > EVENT_INLINE_LIMIT
    if run.params is not None:
        data: Any = run.params
    elif event.structured is not None:
        data = event.structured.get("data")
    else:
        data = None
    params_json = json_compact(data if data is not None else {})

    env: list[dict[str, Any]] = [
        _env_value("K8X_RUN_ID", str(run.id)),
        _env_value("K8X_SERVICE", service.name),
        _env_value("K8X_PROJECT", project_slug),
        _env_value("K8X_TRIGGER", str(run.trigger_kind)),
        _env_value("K8X_CORRELATION_ID", run.correlation_id or ""),
        _env_value("K8X_EVENT_ID", event.id),
        _env_value("K8X_EVENT_TYPE", event.type),
        _env_value("K8X_EVENT_SOURCE", event.source),
        _env_value("K8X_EVENT_SUBJECT", event.subject),
        _env_value("K8X_EVENT_TIME", event.time),
    ]
    if large:
        env.append(_env_value("K8X_EVENT_FILE", EVENT_FILE_PATH))
    else:
        env.append(_env_value("K8X_EVENT", event_json))
    # A huge data value would not fit in a process environment (Linux caps one
    # variable at 128 KiB); with a large event the full data is in the file.
    if not large or len(params_json.encode()) <= EVENT_INLINE_LIMIT:
        env.append(_env_value("K8X_PARAMS", params_json))
    for name, value in params_env(data):
        if not large or len(value.encode()) <= EVENT_INLINE_LIMIT:
            env.append(_env_value(name, value))
    secret_set = set(secret_keys)
    # A secret and a config of the same name: the secret wins (and stays a reference).
    for key, value in sorted(configs.items()):
        if key not in secret_set:
            env.append(_env_value(key, value))
    for key in sorted(secret_set):
        env.append(_env_secret(key, service_secret_name(service.name), key))
    env.append(_env_value("K8X_EVENTS_URL", events_url))
    env.append(_env_secret("K8X_RUN_TOKEN", run_secret_name(run.id), RUN_TOKEN_KEY))
    return env, large, event_json


def _merge_env(container: dict[str, Any], k8x_env: list[dict[str, Any]]) -> None:
    names = {e["name"] for e in k8x_env}
    own = [e for e in (container.get("env") or []) if isinstance(e, dict) and e.get("name") not in names]
    container["env"] = copy.deepcopy(k8x_env) + own


def job_labels(*, run: RunFields, service: ServiceFields, project_slug: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: "k8x",
        LABEL_PROJECT: project_slug,
        LABEL_SERVICE: service.name,
        LABEL_RUN_ID: str(run.id),
    }


def job_build(
    *,
    run: RunFields,
    service: ServiceFields,
    project_slug: str,
    namespace: str,
    event: EventFields | EventView | None,
    configs: dict[str, str],
    secret_keys: list[str],
    events_url: str,
    run_token: str,
    ttl_seconds_after_finished: int | None,
    defaults: RunDefaults | None = None,
) -> JobBuild:
    """The Job for ``run`` and the data of its run Secret (the token, and the event
    file when the event is over 64 KiB). Raises JobSpecInvalid for a template that
    cannot become a Job; the API server judges the rest. ``defaults``: the
    project's run defaults and placement (k8x_core.runs.defaults)."""
    view = event if isinstance(event, EventView) else EventView.of(event)
    if service.job_template.strip():
        job = template_parse(service.job_template)
    else:
        if not service.image:
            raise JobSpecInvalid(f"service {service.name} has neither an image nor a job template")
        container: dict[str, Any] = {"name": service.name, "image": service.image}
        if service.command:
            container["command"] = [str(c) for c in service.command]
        if service.args:
            container["args"] = [str(a) for a in service.args]
        if service.resources:
            container["resources"] = copy.deepcopy(service.resources)
        job = {"spec": {"template": {"spec": {"containers": [container]}}}}

    env, large, event_json = contract_env(
        run=run,
        service=service,
        project_slug=project_slug,
        event=view,
        configs=configs,
        secret_keys=secret_keys,
        events_url=events_url,
    )
    labels = job_labels(run=run, service=service, project_slug=project_slug)
    annotations = {ANNOTATION_EVENT_ID: view.id, ANNOTATION_CORRELATION_ID: run.correlation_id or ""}

    meta: dict[str, Any] = job["metadata"] if isinstance(job.get("metadata"), dict) else {}
    job["apiVersion"] = "batch/v1"
    job["kind"] = "Job"
    job["metadata"] = {
        "name": run_job_name(run.id),
        "namespace": namespace,
        "labels": {**(meta.get("labels") or {}), **labels},
        "annotations": {**(meta.get("annotations") or {}), **annotations},
    }
    spec = job["spec"]
    spec["backoffLimit"] = int(service.retries or 0)
    if service.timeout_seconds:
        spec["activeDeadlineSeconds"] = int(service.timeout_seconds)
    if ttl_seconds_after_finished is not None and ttl_seconds_after_finished >= 0:
        spec["ttlSecondsAfterFinished"] = int(ttl_seconds_after_finished)
    template = spec["template"]
    tmeta: dict[str, Any] = template["metadata"] if isinstance(template.get("metadata"), dict) else {}
    template["metadata"] = {
        **tmeta,
        "labels": {**(tmeta.get("labels") or {}), **labels},
        "annotations": {**(tmeta.get("annotations") or {}), **annotations},
    }
    pod_spec = template["spec"]
    pod_spec["restartPolicy"] = "Never"
    security_defaults_apply(job=job, uid=project_uid(project_id=service.project_id))
    # Service links would add variables for every Service in the namespace.
    pod_spec.setdefault("enableServiceLinks", False)
    if defaults is not None:
        job_defaults_apply(job=job, defaults=defaults)

    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or []:
            _merge_env(container, env)
            if large:
                mounts = [m for m in (container.get("volumeMounts") or []) if m.get("name") != EVENT_VOLUME]
                mounts.append({"name": EVENT_VOLUME, "mountPath": EVENT_MOUNT_DIR, "readOnly": True})
                container["volumeMounts"] = mounts

    secret_data = {RUN_TOKEN_KEY: run_token}
    if large:
        volumes = [v for v in (pod_spec.get("volumes") or []) if v.get("name") != EVENT_VOLUME]
        volumes.append(
            {
                "name": EVENT_VOLUME,
                "secret": {
                    "secretName": run_secret_name(run.id),
                    "items": [{"key": EVENT_FILE_KEY, "path": EVENT_FILE_KEY}],
                },
            }
        )
        pod_spec["volumes"] = volumes
        secret_data[EVENT_FILE_KEY] = event_json
    return JobBuild(job=job, run_secret_data=secret_data, event_in_file=large)
