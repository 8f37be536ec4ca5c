"""Service directories (see PRODUCT.md, "Service directory"): read, validate, plan, apply.

The pipeline is the same for a git sync and for ``k8x_apply``:

1. ``servicedir_load`` reads every top-level directory holding a
   ``manifest.json`` and validates *everything* (manifest fields and types,
   the Job template and ``retries`` through the one validator of a service,
   ``k8x_core.runs.validation``, then a server-side dry run of the Job the
   launcher would build, the parameters schema, the configs, the cron
   expression, the trigger event types). It returns the specs and every
   problem found, each naming its file, field and (for policy) rule.
2. ``plan_build`` compares the specs with the project's services: create,
   update (with a diff per field), deactivate (a service of the same source
   whose directory disappeared), unchanged.
3. ``plan_apply`` applies the plan in one transaction and records a
   SyncRecord. A load with any error applies nothing (``sync_failed`` records
   why).

Rows written here carry ``origin=git``; triggers and service-scope configs
that people added by hand (``origin=manual``) are left alone.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from jsonschema import Draft202012Validator, SchemaError, ValidationError

from k8x_core import kube
from k8x_core.audit import ACTOR_APPLY, actor_of_git, audit_record
from k8x_core.catalog.services import service_set_active
from k8x_core.events.scheduler import schedule_validate
from k8x_core.hub.matching import triggers_cap_check
from k8x_core.models import (
    DNS_LABEL_REGEX,
    ENV_NAME_REGEX,
    Config,
    GitRepository,
    Origin,
    PodSecurityLevel,
    Project,
    Scope,
    Service,
    SyncRecord,
    Trigger,
)
from k8x_core.runs import validation
from k8x_core.runs.defaults import NO_PLACEMENT, Placement, project_placement

MAX_FILE_BYTES = 1024 * 1024
MANIFEST = "manifest.json"
DEPLOYMENT = "deployment.yaml"
PARAMETERS = "parameters.json"
CONFIGS = "configs.json"

MANIFEST_FIELDS = (
    "name",
    "type",
    "description",
    "active",
    "allow_manual_triggering",
    "trigger_events",
    "tags",
    "schedule",
    "timeout",
    "retries",
    "concurrency",
)

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name", "type"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": DNS_LABEL_REGEX, "maxLength": 50},
        "type": {"const": "k8x_job"},
        "description": {"type": "string"},
        "active": {"type": "boolean"},
        "allow_manual_triggering": {"type": "boolean"},
        # Event types or globs such as com.acme.order.*: no whitespace.
        "trigger_events": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^\S+$"},
        },
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100}},
        "schedule": {"type": ["string", "null"], "maxLength": 200},
        "timeout": {"type": "integer", "minimum": 1, "maximum": 2147483647},
        "retries": {"type": "integer", "minimum": 0, "maximum": 1000},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 2147483647},
    },
}
_MANIFEST_VALIDATOR = Draft202012Validator(MANIFEST_SCHEMA)

_JSON_TYPE = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}
_SCHEMA_TYPE = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "boolean": "a boolean (true or false)",
    "integer": "an integer",
    "null": "null",
}


# --- results --------------------------------------------------------------


@dataclass(frozen=True)
class SpecError:
    """One problem, named by file (relative to the repository root or DIR) and field."""

    file: str
    field: str
    message: str
    rule: str = ""  # the policy or structure rule broken (validation.Problem.rule), when there is one

    def as_json(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field, "message": self.message, "rule": self.rule}

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        text = f"{where}: {self.message}" if where else self.message
        return f"{text} [rule {self.rule}]" if self.rule else text

    @classmethod
    def of(cls, problem: validation.Problem, *, file: str) -> SpecError:
        return cls(file, problem.path, problem.message, problem.rule)


@dataclass
class ServiceSpec:
    """One service directory, validated; field names are the Service model's."""

    directory: str
    name: str
    description: str = ""
    active: bool = True
    allow_manual_triggering: bool = True
    trigger_events: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    schedule: str = ""
    timeout_seconds: int | None = None
    retries: int = 0
    max_concurrency: int | None = None
    job_template: str = ""
    parameters_schema: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadResult:
    specs: list[ServiceSpec]
    errors: list[SpecError]

    @property
    def ok(self) -> bool:
        return not self.errors


# --- reading and validating -----------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _path_text(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _manifest_error_message(err: ValidationError) -> tuple[str, str]:
    """(field, message) for a manifest schema error, worded for people."""
    where = _path_text(err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties":
        unknown = sorted(set(err.instance) - set(MANIFEST_FIELDS)) if isinstance(err.instance, dict) else []
        name = unknown[0] if unknown else where
        return name, f"unknown field; allowed fields are {', '.join(MANIFEST_FIELDS)}"
    if err.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        return (missing[0] if missing else where), "required field is missing"
    if err.validator == "type":
        wanted = schema.get("type")
        wanted_list = wanted if isinstance(wanted, list) else [wanted]
        names = " or ".join(_SCHEMA_TYPE.get(str(w), str(w)) for w in wanted_list)
        return where, f"must be {names}, not {_describe(err.instance)}"
    if err.validator == "const":
        return where, f"must be {json.dumps(schema.get('const'))}, not {json.dumps(err.instance)}"
    if err.validator == "pattern" and where == "name":
        return where, f"{err.instance!r} is not a DNS label (lower-case letters, digits and '-', no '-' at the ends)"
    if err.validator == "pattern":
        return where, f"{err.instance!r} must not be empty or contain whitespace"
    if err.validator in ("minimum", "maximum", "minLength", "maxLength"):
        return where, err.message
    return where, err.message


def _read_text(path: Path, rel: str, errors: list[SpecError]) -> str | None:
    if path.is_symlink() or not path.is_file():
        # A symlink could point anywhere on this machine; never follow one.
        errors.append(SpecError(rel, "", "must be a regular file (symbolic links are not followed)"))
        return None
    if path.stat().st_size > MAX_FILE_BYTES:
        errors.append(SpecError(rel, "", f"is larger than {MAX_FILE_BYTES} bytes"))
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        errors.append(SpecError(rel, "", "is not UTF-8 text"))
        return None


def _read_json(path: Path, rel: str, errors: list[SpecError]) -> tuple[bool, Any]:
    text = _read_text(path, rel, errors)
    if text is None:
        return False, None
    try:
        return True, json.loads(text)
    except json.JSONDecodeError as exc:
        errors.append(SpecError(rel, "", f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"))
        return False, None


def manifest_validate(*, data: Any, rel: str) -> list[SpecError]:
    """Every problem of a parsed manifest.json, including the cron expression."""
    errors: list[SpecError] = []
    if not isinstance(data, dict):
        return [SpecError(rel, "", f"must be a JSON object, not {_describe(data)}")]
    for err in sorted(_MANIFEST_VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        if err.validator == "additionalProperties" and isinstance(data, dict):
            for name in sorted(set(data) - set(MANIFEST_FIELDS)):
                errors.append(SpecError(rel, name, f"unknown field; allowed fields are {', '.join(MANIFEST_FIELDS)}"))
            continue
        fld, message = _manifest_error_message(err)
        errors.append(SpecError(rel, fld, message))
    schedule = data.get("schedule")
    problem = schedule_validate(expression=schedule) if isinstance(schedule, str) and schedule.strip() else None
    if problem:
        errors.append(SpecError(rel, "schedule", problem))
    return errors


def job_validate_on_cluster(*, spec: ServiceSpec, project: Project | None, namespace: str, rel: str) -> list[SpecError]:
    """Server-side dry run of the Job the launcher would build for ``spec``."""
    service = Service(
        project=project,
        name=spec.name,
        job_template=spec.job_template,
        retries=spec.retries,
        timeout_seconds=spec.timeout_seconds,
    )
    return [SpecError.of(p, file=rel) for p in validation.service_dry_run(service=service, namespace=namespace)]


def parameters_validate(*, data: Any, rel: str) -> list[SpecError]:
    if not isinstance(data, dict):
        return [SpecError(rel, "", f"must be a JSON Schema object, not {_describe(data)}")]
    try:
        Draft202012Validator.check_schema(data)
    except SchemaError as exc:
        # check_schema already raises the best match among the schema's errors.
        return [SpecError(rel, _path_text(exc.absolute_path) or "", f"not a valid JSON Schema: {exc.message}")]
    return []


def configs_validate(*, data: Any, rel: str) -> tuple[dict[str, str], list[SpecError]]:
    if not isinstance(data, dict):
        return {}, [SpecError(rel, "", f"must be a JSON object of KEY: value, not {_describe(data)}")]
    configs: dict[str, str] = {}
    errors: list[SpecError] = []
    for key, value in data.items():
        if not re.match(ENV_NAME_REGEX, key) or len(key) > 200:
            errors.append(SpecError(rel, key, "is not a valid environment variable name"))
            continue
        if key.startswith("K8X_"):
            errors.append(SpecError(rel, key, "K8X_ variables are reserved for the container contract"))
            continue
        if isinstance(value, bool):
            configs[key] = "true" if value else "false"
        elif isinstance(value, str):
            configs[key] = value
        elif isinstance(value, int | float):
            configs[key] = json.dumps(value)
        else:
            errors.append(SpecError(rel, key, f"must be a string, number or boolean, not {_describe(value)}"))
    return configs, errors


def servicedir_read(
    *, directory: Path, rel: str, level: str = PodSecurityLevel.RESTRICTED, placement: Placement = NO_PLACEMENT
) -> tuple[ServiceSpec | None, dict[str, Any] | None, list[SpecError]]:
    """One service directory without the cluster check: (spec, its Job, errors).

    The template and the manifest's ``retries`` go through the one validator
    (``validation.service_check``) at the project's Pod Security ``level``."""
    errors: list[SpecError] = []
    manifest_rel = f"{rel}/{MANIFEST}"
    ok, manifest = _read_json(directory / MANIFEST, manifest_rel, errors)
    if ok:
        errors += manifest_validate(data=manifest, rel=manifest_rel)
    manifest_data: dict[str, Any] = manifest if isinstance(manifest, dict) else {}
    name = manifest_data.get("name")

    job: dict[str, Any] | None = None
    deployment_rel = f"{rel}/{DEPLOYMENT}"
    text: str | None = None
    if not (directory / DEPLOYMENT).exists() and not (directory / DEPLOYMENT).is_symlink():
        errors.append(SpecError(deployment_rel, "", "is missing (a batch/v1 Job or a Pod template is required)"))
    else:
        text = _read_text(directory / DEPLOYMENT, deployment_rel, errors)
    if text is not None:
        job, problems = validation.service_check(
            name=name if isinstance(name, str) else directory.name,
            job_template=text,
            image="",
            retries=manifest_data.get("retries", 0),
            level=level,
            placement=placement,
        )
        for problem in problems:
            errors.append(SpecError.of(problem, file=manifest_rel if problem.path == "retries" else deployment_rel))
        if not text.strip():
            errors.append(SpecError(deployment_rel, "", "is empty (a batch/v1 Job or a Pod template is required)"))

    parameters: dict[str, Any] = {}
    if (directory / PARAMETERS).exists() or (directory / PARAMETERS).is_symlink():
        ok, data = _read_json(directory / PARAMETERS, f"{rel}/{PARAMETERS}", errors)
        if ok:
            schema_errors = parameters_validate(data=data, rel=f"{rel}/{PARAMETERS}")
            errors += schema_errors
            parameters = data if not schema_errors else {}

    configs: dict[str, str] = {}
    if (directory / CONFIGS).exists() or (directory / CONFIGS).is_symlink():
        ok, data = _read_json(directory / CONFIGS, f"{rel}/{CONFIGS}", errors)
        if ok:
            configs, config_errors = configs_validate(data=data, rel=f"{rel}/{CONFIGS}")
            errors += config_errors

    if errors or not isinstance(manifest, dict) or job is None or text is None:
        return None, job, errors
    # Pods and Pod templates are stored as the Job they stand for, so the launcher reads one shape.
    doc = yaml.safe_load(text)
    template_text = text if isinstance(doc, dict) and doc.get("kind") == "Job" else yaml.safe_dump(job, sort_keys=False)
    schedule = manifest.get("schedule") or ""
    spec = ServiceSpec(
        directory=rel,
        name=manifest["name"],
        description=manifest.get("description", ""),
        active=manifest.get("active", True),
        allow_manual_triggering=manifest.get("allow_manual_triggering", True),
        trigger_events=list(dict.fromkeys(manifest.get("trigger_events", []))),
        tags=list(manifest.get("tags", [])),
        schedule=schedule.strip(),
        timeout_seconds=manifest.get("timeout"),
        retries=manifest.get("retries", 0),
        max_concurrency=manifest.get("concurrency"),
        job_template=template_text,
        parameters_schema=parameters,
        configs=configs,
    )
    return spec, job, errors


def servicedir_load(
    *, root: Path, project: Project | None = None, validate_on_cluster: bool = True, allow_single: bool = False
) -> LoadResult:
    """Read and validate every service directory under ``root``.

    A service directory is a top-level directory holding ``manifest.json``;
    others (docs, CI files) are ignored, as are hidden ones. With
    ``allow_single`` (k8x_apply), a ``root`` that holds ``manifest.json`` itself
    is the one service directory. ``project`` (None: not created yet) gives the
    Pod Security level and the namespace used for the Job dry run when it exists
    on the cluster."""
    errors: list[SpecError] = []
    specs: list[ServiceSpec] = []
    level = project.pod_security_level if project is not None else PodSecurityLevel.RESTRICTED
    placement = project_placement(project=project)
    if not root.is_dir():
        return LoadResult([], [SpecError(str(root), "", "is not a directory")])
    single = allow_single and (root / MANIFEST).is_file()
    for directory in [root] if single else sorted(root.iterdir(), key=lambda p: p.name):
        if directory.name.startswith(".") and not single:
            continue
        manifest = directory / MANIFEST
        if directory.is_symlink():
            if (directory / MANIFEST).exists():
                errors.append(SpecError(directory.name, "", "service directories must not be symbolic links"))
            continue
        if not directory.is_dir() or not (manifest.exists() or manifest.is_symlink()):
            continue
        spec, _, dir_errors = servicedir_read(directory=directory, rel=directory.name, level=level, placement=placement)
        errors += dir_errors
        if spec is not None:
            specs.append(spec)

    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            errors.append(
                SpecError(
                    f"{spec.directory}/{MANIFEST}", "name", f"{spec.name!r} is also the name in {seen[spec.name]}/"
                )
            )
        seen.setdefault(spec.name, spec.directory)

    if validate_on_cluster and specs:
        # job_dry_run uses a namespace of its own while the project's does not exist yet.
        dry_ns = project.namespace if project is not None else kube.dry_run_namespace()
        for spec in specs:
            errors += job_validate_on_cluster(
                spec=spec, project=project, namespace=dry_ns, rel=f"{spec.directory}/{DEPLOYMENT}"
            )
    return LoadResult(specs=specs, errors=errors)


# --- planning -------------------------------------------------------------

SERVICE_FIELDS = (
    "description",
    "tags",
    "active",
    "allow_manual_triggering",
    "job_template",
    "timeout_seconds",
    "retries",
    "max_concurrency",
    "schedule",
    "parameters_schema",
)


@dataclass
class Change:
    """One service's change: create, update, deactivate or unchanged, with a diff per field."""

    action: str
    service: str
    directory: str = ""
    diff: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action, "service": self.service, "directory": self.directory, "diff": self.diff}


@dataclass
class Plan:
    project_slug: str
    project: Project | None
    repository: GitRepository | None
    specs: list[ServiceSpec]
    changes: list[Change]
    errors: list[SpecError]
    deactivate_missing: bool = True

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "deactivate": 0, "unchanged": 0}
        for change in self.changes:
            out[change.action] += 1
        return out

    @property
    def has_changes(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)

    def render(self) -> str:
        """The plan for people: one block per service, then a summary line."""
        source = f"repository {self.repository.name}" if self.repository else "local directory"
        lines = [f"Plan for project {self.project_slug} ({source}):"]
        if self.project is None:
            lines.append(f"  + create project {self.project_slug}")
        marks = {"create": "+", "update": "~", "deactivate": "-", "unchanged": "="}
        for change in self.changes:
            where = f" ({change.directory}/)" if change.directory else ""
            lines.append(f"  {marks[change.action]} {change.action} {change.service}{where}")
            for name, d in change.diff.items():
                if "diff" in d:
                    lines.append(f"      {name}:")
                    lines += [f"        {line}" for line in d["diff"].splitlines()]
                else:
                    lines.append(f"      {name}: {json.dumps(d['old'])} -> {json.dumps(d['new'])}")
        for err in self.errors:
            lines.append(f"  ! {err}")
        c = self.counts()
        lines.append(
            f"{c['create']} to create, {c['update']} to update, {c['deactivate']} to deactivate, "
            f"{c['unchanged']} unchanged."
        )
        return "\n".join(lines)


def _template_diff(old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), "current", "new", n=1, lineterm="\n"
        )
    )


def _service_state(service: Service) -> dict[str, Any]:
    state = {name: getattr(service, name) for name in SERVICE_FIELDS}
    state["trigger_events"] = sorted(
        t.event_type for t in service.triggers.all() if t.origin == Origin.GIT and not t.source_glob
    )
    state["configs"] = dict(
        sorted((c.key, c.value) for c in Config.objects.filter(scope=Scope.SERVICE, service=service, origin=Origin.GIT))
    )
    return state


def _spec_state(spec: ServiceSpec) -> dict[str, Any]:
    state = {name: getattr(spec, name) for name in SERVICE_FIELDS}
    state["trigger_events"] = sorted(spec.trigger_events)
    state["configs"] = dict(sorted(spec.configs.items()))
    return state


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in new.items():
        if old.get(name) == value:
            continue
        if name == "job_template":
            out[name] = {"diff": _template_diff(old.get(name) or "", value)}
        else:
            out[name] = {"old": old.get(name), "new": value}
    return out


def _owner_label(service: Service) -> str:
    if service.origin != Origin.GIT:
        return "the console"
    if service.source_repo_id is None:
        return "k8x_apply"
    return f"repository {service.source_repo.name if service.source_repo else service.source_repo_id}"


def _managed_by_this_source(service: Service, repository: GitRepository | None) -> bool:
    if service.origin != Origin.GIT:
        return False
    return service.source_repo_id == (repository.pk if repository else None)


def _triggers_cap_errors(project: Project | None, specs: list[ServiceSpec]) -> list[SpecError]:
    """The project's trigger count once these specs are applied, against the cap."""
    kept = 0
    if project is not None:
        names = [spec.name for spec in specs]
        # The git triggers of these services are replaced by the specs' own.
        kept = (
            Trigger.objects.filter(service__project=project).exclude(origin=Origin.GIT, service__name__in=names).count()
        )
    total = kept + sum(len(spec.trigger_events) for spec in specs)
    message = triggers_cap_check(count=total)
    if not message:
        return []
    first = next((spec for spec in specs if spec.trigger_events), specs[0])
    return [SpecError(f"{first.directory}/{MANIFEST}", "trigger_events", message, "triggers-cap")]


def plan_build(
    *,
    project: Project | None,
    project_slug: str,
    specs: list[ServiceSpec],
    repository: GitRepository | None = None,
    deactivate_missing: bool = True,
) -> Plan:
    """What applying ``specs`` would change in the project.

    A service created in the console is adopted (it becomes git-managed); a
    service managed by another repository (or by k8x_apply when this is a
    repository, and the other way round) is a conflict, reported as an error.
    ``deactivate_missing=False`` (one service directory applied alone) leaves
    the source's other services as they are."""
    changes: list[Change] = []
    errors: list[SpecError] = []
    existing: dict[str, Service] = {}
    if project is not None:
        existing = {
            s.name: s
            for s in Service.objects.filter(project=project).select_related("source_repo").prefetch_related("triggers")
        }
    for spec in specs:
        service = existing.get(spec.name)
        new_state = _spec_state(spec)
        if service is None:
            diff = {
                name: {"old": None, "new": value}
                for name, value in new_state.items()
                if name != "job_template" and value not in (None, "", [], {})
            }
            diff["job_template"] = {"diff": _template_diff("", spec.job_template)}
            changes.append(Change("create", spec.name, spec.directory, diff))
            continue
        if service.origin == Origin.GIT and not _managed_by_this_source(service, repository):
            errors.append(
                SpecError(
                    f"{spec.directory}/{MANIFEST}",
                    "name",
                    f"service {spec.name!r} is managed by {_owner_label(service)}; remove it there first",
                )
            )
            continue
        diff = _diff(_service_state(service), new_state)
        if service.origin != Origin.GIT:
            diff["origin"] = {"old": service.origin, "new": Origin.GIT.value}
        changes.append(Change("update" if diff else "unchanged", spec.name, spec.directory, diff))
    errors += _triggers_cap_errors(project, specs)
    wanted = {spec.name for spec in specs}
    for name, service in sorted(existing.items()):
        if (
            deactivate_missing
            and name not in wanted
            and service.active
            and _managed_by_this_source(service, repository)
        ):
            changes.append(Change("deactivate", name, "", {"active": {"old": True, "new": False}}))
    return Plan(
        project_slug=project_slug,
        project=project,
        repository=repository,
        specs=specs,
        changes=changes,
        errors=errors,
        deactivate_missing=deactivate_missing,
    )


# --- applying -------------------------------------------------------------


def _triggers_replace(service: Service, event_types: list[str]) -> None:
    git_triggers = list(Trigger.objects.filter(service=service, origin=Origin.GIT))
    keep: set[str] = set()
    for trigger in git_triggers:
        if trigger.event_type in event_types and trigger.event_type not in keep and not trigger.source_glob:
            keep.add(trigger.event_type)
            if not trigger.active or trigger.cel_expression:
                trigger.active = True
                trigger.cel_expression = ""
                trigger.save(update_fields=["active", "cel_expression", "updated_at"])
        else:
            trigger.delete()
    for event_type in event_types:
        if event_type not in keep:
            Trigger.objects.create(service=service, event_type=event_type, origin=Origin.GIT)


def _configs_replace(service: Service, configs: dict[str, str]) -> None:
    current = {c.key: c for c in Config.objects.filter(scope=Scope.SERVICE, service=service)}
    for key, old in current.items():
        if key not in configs and old.origin == Origin.GIT:
            old.delete()
    for key, value in configs.items():
        entry = current.get(key)
        if entry is None:
            Config.objects.create(
                scope=Scope.SERVICE, project=service.project, service=service, key=key, value=value, origin=Origin.GIT
            )
        elif entry.value != value or entry.origin != Origin.GIT:
            # The repository declares this key, so it now owns it.
            entry.value = value
            entry.origin = Origin.GIT
            entry.save(update_fields=["value", "origin", "updated_at"])


def _service_write(service: Service, spec: ServiceSpec, repository: GitRepository | None, commit: str) -> None:
    for name in SERVICE_FIELDS:
        setattr(service, name, getattr(spec, name))
    service.origin = Origin.GIT
    service.source_repo = repository
    service.source_commit = commit
    # The Job template is authoritative; leftover simple fields would only confuse.
    service.image = ""
    service.command = []
    service.args = []
    service.resources = {}
    service.save()
    _triggers_replace(service, spec.trigger_events)
    _configs_replace(service, spec.configs)


def _audit_state(service: Service) -> dict[str, Any]:
    """What the audit log compares: the fields a service directory sets, its git triggers and configs."""
    return {**_service_state(service), "origin": service.origin}


def sync_failed(
    *,
    project: Project,
    repository: GitRepository | None,
    source: str,
    commit: str,
    requested_by: AbstractBaseUser | None,
    errors: list[SpecError],
) -> SyncRecord:
    """Record a sync that applied nothing, with every problem."""
    return SyncRecord.objects.create(
        project=project,
        repository=repository,
        requested_by_id=requested_by.pk if requested_by is not None else None,
        source=source[:1000],
        commit=commit,
        status=SyncRecord.Status.FAILED,
        errors=[e.as_json() for e in errors],
    )


def plan_apply(
    *, plan: Plan, source: str, commit: str = "", requested_by: AbstractBaseUser | None = None
) -> SyncRecord:
    """Apply the plan's specs in one transaction; returns the SyncRecord (applied or failed).

    The plan is rebuilt under a lock on the project, so what is recorded is
    what was done even if the project changed since the plan was shown."""
    if plan.project is None:
        raise ValueError(f"project {plan.project_slug} does not exist; create it before applying")
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=plan.project.pk)
        fresh = plan_build(
            project=project,
            project_slug=project.slug,
            specs=plan.specs,
            repository=plan.repository,
            deactivate_missing=plan.deactivate_missing,
        )
        if fresh.errors:
            return sync_failed(
                project=project,
                repository=plan.repository,
                source=source,
                commit=commit,
                requested_by=requested_by,
                errors=fresh.errors,
            )
        by_name = {s.name: s for s in Service.objects.select_for_update().filter(project=project)}
        actor = actor_of_git(plan.repository, requested_by=requested_by) if plan.repository else ACTOR_APPLY
        for spec in plan.specs:
            existing = by_name.get(spec.name)
            service = existing or Service(project=project, name=spec.name)
            before = _audit_state(existing) if existing is not None else None
            _service_write(service, spec, plan.repository, commit)
            audit_record(
                project=project,
                actor=actor,
                action="update" if existing is not None else "create",
                kind="service",
                name=service.name,
                object_id=service.pk,
                before=before,
                after=_audit_state(service),
            )
        for change in fresh.changes:
            if change.action == "deactivate":
                service_set_active(service=by_name[change.service], active=False, actor=actor)
        return SyncRecord.objects.create(
            project=project,
            repository=plan.repository,
            requested_by_id=requested_by.pk if requested_by is not None else None,
            source=source[:1000],
            commit=commit,
            status=SyncRecord.Status.APPLIED,
            changes=[c.as_json() for c in fresh.changes],
        )


def service_sync_history(*, service: Service, limit: int = 20) -> list[SyncRecord]:
    """The applied syncs that created, updated or deactivated this service, newest first.

    For the service page: each record has requested_by, created_at, commit,
    repository and ``changes`` (the entry with ``"service": name`` holds the
    action and the field diff)."""
    touched = Q()
    for action in ("create", "update", "deactivate"):
        touched |= Q(changes__contains=[{"service": service.name, "action": action}])
    return list(
        SyncRecord.objects.filter(project_id=service.project_id, status=SyncRecord.Status.APPLIED)
        .filter(touched)
        .select_related("repository", "requested_by")
        .order_by("-created_at", "-pk")[:limit]
    )


def service_change_in(*, record: SyncRecord, service_name: str) -> dict[str, Any] | None:
    """The change entry of one service in a SyncRecord, if any."""
    for change in record.changes or []:
        if isinstance(change, dict) and change.get("service") == service_name:
            return change
    return None
