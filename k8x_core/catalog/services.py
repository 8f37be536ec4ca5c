"""Service changes made by people (the console), and manual runs.

Git deployments go through their own apply path; these functions are what a
form submit does once the form's own field checks have passed.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import jsonschema
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.utils import timezone

from k8x_core.audit import Actor, audit_fields, audit_record
from k8x_core.events import ce, ingest
from k8x_core.hub import cel, matching
from k8x_core.models import Event, Run, RunStatus, Service, Trigger, TriggerKind
from k8x_core.runs import validation
from k8x_core.runs.defaults import project_placement
from k8x_core.runs.queue import run_enqueue


class ServiceInvalid(ValueError):
    """A service the cluster (or K8X) would refuse; ``field`` names the form field to blame."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ClusterUnavailable(RuntimeError):
    """The cluster could not be asked; nothing was saved."""


def service_problems(*, service: Service) -> list[validation.Problem]:
    """K8X's own check of an (unsaved) service at its project's level: the one validator."""
    _, problems = validation.service_check(
        name=service.name,
        job_template=service.job_template,
        image=service.image,
        retries=service.retries,
        level=service.project.pod_security_level,
        placement=project_placement(project=service.project),
    )
    return problems


def service_validate_on_cluster(*, service: Service) -> None:
    """Server-side dry run of the Job the launcher would build for this service.

    Raises ServiceInvalid with the API server's message, or ClusterUnavailable."""
    for problem in validation.service_dry_run(service=service, namespace=service.project.namespace):
        if problem.rule == "cluster-unavailable":
            # Unreachable, forbidden, ...: nothing is saved unchecked.
            raise ClusterUnavailable(problem.message)
        raise ServiceInvalid(problem.message, field=_blamed_field(service, problem.message))


def _blamed_field(service: Service, message: str) -> str | None:
    """The form field an API server message is about (None: the whole form)."""
    if service.job_template.strip():
        return "job_template"
    for part in ("resources", "image", "command", "args"):
        if re.search(rf"containers\[\d+\]\.{part}\b", message):
            return part
    if "quantities must match" in message:  # a decode error names no path; only resources hold quantities
        return "resources"
    if "activeDeadlineSeconds" in message:
        return "timeout_seconds"
    return None


# Who changes a service: a user (the console), an Actor (git, k8x_apply, an API key), None for K8X itself.
AuditActor = Actor | AbstractBaseUser | None


def service_set_active(*, service: Service, active: bool, actor: AuditActor = None) -> None:
    """Switch a service on or off. ``updated_at`` moves with it: the hub's trigger
    index reloads on it, so an inactive service stops matching within a second;
    the launcher cancels the runs it still had queued."""
    was = service.active
    Service.objects.filter(pk=service.pk).update(active=active, updated_at=timezone.now())
    service.active = active
    audit_record(
        project=service.project,
        actor=actor,
        action="update",
        kind="service",
        name=service.name,
        object_id=service.pk,
        before={"active": was},
        after={"active": active},
    )


def service_save(*, service: Service, actor: AuditActor) -> Service:
    """Create or update a service made in the console (already validated), recording the change."""
    before = audit_fields(Service.objects.get(pk=service.pk)) if service.pk else None
    with transaction.atomic():
        service.save()
        audit_record(
            project=service.project,
            actor=actor,
            action="update" if before is not None else "create",
            kind="service",
            name=service.name,
            object_id=service.pk,
            before=before,
            after=audit_fields(service),
        )
    return service


def service_delete(*, service: Service, actor: AuditActor = None) -> None:
    """Delete a service with its triggers, configs and runs (the database cascades)."""
    with transaction.atomic():
        audit_record(
            project=service.project,
            actor=actor,
            action="delete",
            kind="service",
            name=service.name,
            object_id=service.pk,
            before=audit_fields(service),
            after=None,
        )
        service.delete()


def _trigger_name(trigger: Trigger) -> str:
    return f"{trigger.service.name}: {trigger.event_type}"


def trigger_save(*, trigger: Trigger, actor: AuditActor) -> Trigger:
    """Create or update a trigger made in the console, recording the change."""
    before = audit_fields(Trigger.objects.get(pk=trigger.pk)) if trigger.pk else None
    with transaction.atomic():
        trigger.save()
        audit_record(
            project=trigger.service.project,
            actor=actor,
            action="update" if before is not None else "create",
            kind="trigger",
            name=_trigger_name(trigger),
            object_id=trigger.pk,
            before=before,
            after=audit_fields(trigger),
        )
    return trigger


def trigger_delete(*, trigger: Trigger, actor: AuditActor) -> None:
    with transaction.atomic():
        audit_record(
            project=trigger.service.project,
            actor=actor,
            action="delete",
            kind="trigger",
            name=_trigger_name(trigger),
            object_id=trigger.pk,
            before=audit_fields(trigger),
            after=None,
        )
        trigger.delete()


def params_validate(*, schema: dict[str, Any], params: dict[str, Any]) -> None:
    """Raise ValueError naming the parameter that does not fit the schema."""
    if not schema:
        return
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.path) or "params"
        raise ValueError(f"{where}: {err.message}")


def run_manual_create(*, service: Service, params: dict[str, Any], user: User | None) -> Run:
    """Create a manual run of a service and queue its launch (on commit)."""
    if not service.active:
        raise ValueError(f"service {service.name} is inactive; activate it first")
    if not service.allow_manual_triggering:
        raise ValueError(f"service {service.name} does not allow manual runs")
    params_validate(schema=service.parameters_schema or {}, params=params)
    with transaction.atomic():
        run = Run.objects.create(
            service=service,
            trigger_kind=TriggerKind.MANUAL,
            params=params,
            requested_by=user,
            status=RunStatus.QUEUED,
            correlation_id=str(uuid.uuid4()),
        )
        run_enqueue(run_id=run.pk)
    return run


def trigger_matches_sample(*, trigger: Trigger, event: dict[str, Any]) -> bool:
    """Whether one trigger (saved or not) matches a sample event, the way the hub matches.

    Raises ValueError for a CEL expression that does not compile, is over the
    limits, or whose evaluation runs over its budget."""
    if not matching.glob_match(pattern=trigger.event_type, value=str(event.get("type", ""))):
        return False
    if trigger.source_glob and not matching.glob_match(pattern=trigger.source_glob, value=str(event.get("source", ""))):
        return False
    program = cel.cel_validate(trigger.cel_expression)  # None: no expression
    if program is not None:
        try:
            return cel.cel_true(program=program, activation_event=cel.cel_event(event))
        except cel.CelOverBudget:
            raise ValueError(
                f"CEL evaluation over its budget of {settings.K8X_CEL_BUDGET_MS:g} ms: the hub counts it as no match"
            ) from None
    return True


def event_send(
    *, user: AbstractBaseUser, project_slug: str, type: str, source: str, data: Any, subject: str = ""
) -> str:
    """Send a test event for a project as the logged-in user; returns its correlation id.

    Raises k8x_core.events.ingest.IngestRefused (with the field to blame)."""
    sender = ingest.sender_from_user(user=user, project_slug=project_slug)
    try:
        event = ce.ce_new(type=type, source=source, data=data, subject=subject or None)
    except ce.CloudEventInvalid as exc:
        raise ingest.IngestRefused(400, exc.message, field=exc.field) from exc
    accepted = ingest.event_accept(events=[event], sender=sender, endpoint="console")
    return accepted[0].correlation_id


def event_replay(*, event: Event, user: AbstractBaseUser, project_slug: str) -> str:
    """Publish a copy of a stored event with a new ``id`` and ``time`` and the same
    correlation id, so the hub processes it again as a new event (a replay is
    re-processing, not a redelivery: redelivery of the same id is a duplicate).
    Scoped to ``project_slug``, where the user must be a member."""
    if event.outcome == "rejected" or not event.payload:
        raise ValueError("a rejected event cannot be replayed: it was never a valid CloudEvent")
    sender = ingest.sender_from_user(user=user, project_slug=project_slug)
    copy = {k: v for k, v in dict(event.payload).items() if not k.startswith(ce.RESERVED_EXTENSION_PREFIX)}
    copy["id"] = str(uuid.uuid4())
    copy["time"] = ce.ce_time_format(timezone.now())
    if event.correlation_id:
        copy[ce.EXT_CORRELATION_ID] = event.correlation_id
    accepted = ingest.event_accept(events=[copy], sender=sender, endpoint="console")
    return accepted[0].id
