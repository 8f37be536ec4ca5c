"""Retention: runs, events and audit entries past their project's age limits are deleted in small batches."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from k8x_core.metrics import RETENTION_DELETED, RETENTION_PASSES
from k8x_core.models import AuditEntry, Event, EventOutcome, Project, Run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionDays:
    """Days each kind is kept (0: forever)."""

    runs: int
    events: int
    unmatched_events: int
    audit: int


def retention_days(*, project: Project | None) -> RetentionDays:
    """The project's retention: its overrides, else the K8X_RETENTION_* settings."""

    def pick(name: str, default: int) -> int:
        override = getattr(project, f"retention_{name}_days") if project is not None else None
        return default if override is None else int(override)

    return RetentionDays(
        runs=pick("runs", settings.K8X_RETENTION_RUNS_DAYS),
        events=pick("events", settings.K8X_RETENTION_EVENTS_DAYS),
        unmatched_events=pick("unmatched_events", settings.K8X_RETENTION_UNMATCHED_EVENTS_DAYS),
        audit=pick("audit", settings.K8X_RETENTION_AUDIT_DAYS),
    )


@dataclass
class RetentionResult:
    """Rows deleted by kind (cascaded rows included: runs of deleted events, their logs), and
    whether everything due was deleted (False: the batch budget ran out; the next pass goes on)."""

    deleted: Counter[str] = field(default_factory=Counter)
    complete: bool = True
    batches: int = 0


def _targets(*, project: Project | None, now: datetime) -> Iterator[tuple[str, QuerySet[models.Model]]]:
    """(label, rows past their age) for one project, or for rows of no project (project None)."""
    days = retention_days(project=project)

    def before(n: int) -> datetime:
        return now - timedelta(days=n)

    if project is not None and days.runs:
        yield "runs", Run.objects.filter(service__project=project, created_at__lt=before(days.runs))
    # An event goes once its own age is reached and no run still refers to it
    # (its runs are kept for their own retention; when they go, it follows).
    no_runs = ~Exists(Run.objects.filter(event_id=OuterRef("pk")))
    events = (
        Event.objects.filter(project=project) if project is not None else Event.objects.filter(project__isnull=True)
    )
    if days.unmatched_events:
        yield (
            "events",
            events.filter(outcome=EventOutcome.UNMATCHED, received_at__lt=before(days.unmatched_events)).filter(
                no_runs
            ),
        )
    if days.events:
        yield (
            "events",
            events.filter(~Q(outcome=EventOutcome.UNMATCHED), received_at__lt=before(days.events)).filter(no_runs),
        )
    if days.audit:
        audit = (
            AuditEntry.objects.filter(project=project)
            if project is not None
            else AuditEntry.objects.filter(project__isnull=True)
        )
        yield "audit", audit.filter(created_at__lt=before(days.audit))


def _delete_batch(qs: QuerySet[models.Model], *, size: int) -> tuple[int, dict[str, int]]:
    """Delete up to ``size`` rows of ``qs``, lowest primary keys first, in one short transaction;
    returns how many rows of ``qs`` were picked and the deleted rows by model label."""
    with transaction.atomic():
        pks = list(qs.order_by("pk").values_list("pk", flat=True)[:size])
        if not pks:
            return 0, {}
        # The collector follows the foreign keys: runs (and their log chunks)
        # cascade, retries of a deleted run keep existing (retry_of SET NULL).
        _total, by_model = qs.model._default_manager.filter(pk__in=pks).delete()
    return len(pks), by_model


_MODEL_LABELS = {"k8x_core.Run": "runs", "k8x_core.Event": "events", "k8x_core.AuditEntry": "audit"}


def retention_apply(*, now: datetime, batch_size: int | None = None, max_batches: int | None = None) -> RetentionResult:
    """Delete what is past its retention, project by project, at most ``max_batches``
    batches of ``batch_size`` rows (defaults: K8X_RETENTION_BATCH_SIZE, K8X_RETENTION_MAX_BATCHES)."""
    size = batch_size or settings.K8X_RETENTION_BATCH_SIZE
    budget = max_batches or settings.K8X_RETENTION_MAX_BATCHES
    result = RetentionResult()
    scopes: list[Project | None] = [*Project.objects.order_by("pk"), None]
    for project in scopes:
        for _label, qs in _targets(project=project, now=now):
            while True:
                if result.batches >= budget:
                    result.complete = False
                    return _counted(result)
                picked, by_model = _delete_batch(qs, size=size)
                if not picked:
                    break
                result.batches += 1
                for model_label, n in by_model.items():
                    result.deleted[_MODEL_LABELS.get(model_label, model_label.rsplit(".", 1)[-1].lower())] += n
                if picked < size:
                    break
    return _counted(result)


def _counted(result: RetentionResult) -> RetentionResult:
    for kind, n in result.deleted.items():
        RETENTION_DELETED.labels(kind=kind).inc(n)
    RETENTION_PASSES.labels(result="complete" if result.complete else "partial").inc()
    if result.deleted:
        logger.info(
            "retention deleted %s%s",
            ", ".join(f"{n} {kind}" for kind, n in sorted(result.deleted.items())),
            "" if result.complete else " (more next pass)",
        )
    return result
