"""Retention against PostgreSQL: exactly the rows past their age go, in batches, per project."""

from __future__ import annotations

import itertools
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from k8x_core.management.commands.k8x_scheduler import SchedulerPasses
from k8x_core.metrics import REGISTRY
from k8x_core.models import AuditEntry, Event, EventOutcome, Project, Run, RunStatus, Service, TriggerKind
from k8x_core.retention import retention_apply, retention_days

pytestmark = pytest.mark.django_db

_ids = itertools.count()


def _event(project: Project | None, *, days: float, now: datetime, outcome: str = EventOutcome.MATCHED) -> Event:
    n = next(_ids)
    event = Event.objects.create(
        ce_id=f"ret-{n}", source="/tests/retention", type="com.acme.t", outcome=outcome, project=project
    )
    Event.objects.filter(pk=event.pk).update(received_at=now - timedelta(days=days))
    return event


def _run(service: Service, *, days: float, now: datetime, event: Event | None = None, **extra: Any) -> Run:
    run = Run.objects.create(
        service=service,
        event=event,
        trigger_kind=TriggerKind.EVENT if event else TriggerKind.MANUAL,
        status=RunStatus.SUCCEEDED,
        **extra,
    )
    Run.objects.filter(pk=run.pk).update(created_at=now - timedelta(days=days))
    return run


def _audit(project: Project | None, *, days: float, now: datetime) -> AuditEntry:
    entry = AuditEntry.objects.create(
        project=project, actor_kind="system", action="update", kind="config", object_name="K"
    )
    AuditEntry.objects.filter(pk=entry.pk).update(created_at=now - timedelta(days=days))
    return entry


def _deleted(kind: str) -> float:
    return REGISTRY.get_sample_value("k8x_retention_deleted_total", {"kind": kind}) or 0.0


def test_exactly_the_rows_past_their_age_go_in_batches(settings: Any) -> None:
    settings.K8X_RETENTION_RUNS_DAYS = 30
    settings.K8X_RETENTION_EVENTS_DAYS = 30
    settings.K8X_RETENTION_UNMATCHED_EVENTS_DAYS = 7
    settings.K8X_RETENTION_AUDIT_DAYS = 365
    now = timezone.now()
    project = Project.objects.create(slug=f"ret-{uuid.uuid4().hex[:6]}")
    service = Service.objects.create(project=project, name="svc", image="busybox")
    gone: dict[str, set[Any]] = {"events": set(), "runs": set(), "audit": set()}
    kept: dict[str, set[Any]] = {"events": set(), "runs": set(), "audit": set()}

    for _ in range(7):  # old events with their old runs
        event = _event(project, days=40, now=now)
        gone["events"].add(event.pk)
        gone["runs"].add(_run(service, days=40, now=now, event=event).pk)
    # An old event whose run is still young stays with it.
    young_run_event = _event(project, days=40, now=now)
    kept["events"].add(young_run_event.pk)
    kept["runs"].add(_run(service, days=10, now=now, event=young_run_event).pk)
    gone["events"] |= {_event(project, days=10, now=now, outcome=EventOutcome.UNMATCHED).pk for _ in range(5)}
    kept["events"] |= {_event(project, days=3, now=now, outcome=EventOutcome.UNMATCHED).pk for _ in range(2)}
    gone["events"] |= {_event(project, days=40, now=now, outcome=EventOutcome.REJECTED).pk for _ in range(3)}
    kept["events"].add(_event(project, days=20, now=now, outcome=EventOutcome.REJECTED).pk)
    # Platform-wide events (no project) follow the defaults.
    gone["events"] |= {_event(None, days=10, now=now, outcome=EventOutcome.UNMATCHED).pk for _ in range(3)}
    kept["events"].add(_event(None, days=29, now=now).pk)
    old_manual = [_run(service, days=31, now=now) for _ in range(4)]
    gone["runs"] |= {r.pk for r in old_manual}
    kept["runs"] |= {_run(service, days=29, now=now).pk for _ in range(2)}
    retry = _run(service, days=1, now=now, retry_of=old_manual[0])
    kept["runs"].add(retry.pk)
    gone["audit"] |= {_audit(project, days=400, now=now).pk for _ in range(2)}
    kept["audit"].add(_audit(project, days=300, now=now).pk)
    before = {kind: _deleted(kind) for kind in ("events", "runs", "audit")}

    result = retention_apply(now=now, batch_size=3, max_batches=1000)

    assert result.complete
    assert result.batches >= 8  # 11 runs and 18 events at 3 a batch
    assert dict(result.deleted) == {"runs": 11, "events": 18, "audit": 2}
    assert set(Event.objects.values_list("pk", flat=True)) == kept["events"]
    assert set(Run.objects.values_list("pk", flat=True)) == kept["runs"]
    assert set(AuditEntry.objects.values_list("pk", flat=True)) == kept["audit"]
    retry.refresh_from_db()
    assert retry.retry_of_id is None  # the retry outlives the run it retried
    assert {kind: _deleted(kind) - before[kind] for kind in before} == {"runs": 11, "events": 18, "audit": 2}
    # A second pass finds nothing.
    assert not retention_apply(now=now, batch_size=3).deleted


def test_a_spent_batch_budget_leaves_the_rest_for_the_next_pass() -> None:
    now = timezone.now()
    project = Project.objects.create(slug=f"ret-{uuid.uuid4().hex[:6]}")
    for _ in range(10):
        _event(project, days=40, now=now)

    first = retention_apply(now=now, batch_size=4, max_batches=2)
    assert (first.complete, first.deleted["events"]) == (False, 8)
    assert Event.objects.count() == 2
    second = retention_apply(now=now, batch_size=4, max_batches=2)
    assert (second.complete, second.deleted["events"]) == (True, 2)
    assert not Event.objects.exists()


def test_a_projects_own_retention_overrides_the_defaults(settings: Any) -> None:
    settings.K8X_RETENTION_RUNS_DAYS = 30
    settings.K8X_RETENTION_EVENTS_DAYS = 30
    now = timezone.now()
    short = Project.objects.create(slug=f"ret-s-{uuid.uuid4().hex[:6]}", retention_runs_days=2, retention_events_days=2)
    forever = Project.objects.create(slug=f"ret-f-{uuid.uuid4().hex[:6]}", retention_runs_days=0)
    default = Project.objects.create(slug=f"ret-d-{uuid.uuid4().hex[:6]}")
    runs = {
        p.slug: _run(Service.objects.create(project=p, name="svc", image="busybox"), days=5, now=now)
        for p in (short, forever, default)
    }
    ancient = _run(Service.objects.get(project=forever), days=3000, now=now)
    events = {p.slug: _event(p, days=5, now=now) for p in (short, forever, default)}
    assert retention_days(project=short).runs == 2 and retention_days(project=default).runs == 30

    retention_apply(now=now)

    assert set(Run.objects.values_list("pk", flat=True)) == {
        runs[forever.slug].pk,
        runs[default.slug].pk,
        ancient.pk,
    }
    assert set(Event.objects.values_list("pk", flat=True)) == {events[forever.slug].pk, events[default.slug].pk}


def test_the_scheduler_applies_retention_at_most_every_interval(settings: Any) -> None:
    settings.K8X_RETENTION_INTERVAL_SECONDS = 3600
    now = timezone.now()
    project = Project.objects.create(slug=f"ret-{uuid.uuid4().hex[:6]}")
    _event(project, days=40, now=now)
    passes = SchedulerPasses(interval=1.0, stopping=threading.Event())

    first = passes.retention_step()
    assert first is not None and first.deleted["events"] == 1
    _event(project, days=40, now=now)
    assert passes.retention_step() is None  # not yet due
    assert Event.objects.count() == 1
    settings.K8X_RETENTION_INTERVAL_SECONDS = 0
    passes.retention_next = 0.0
    assert passes.retention_step() is None  # 0 switches retention off
