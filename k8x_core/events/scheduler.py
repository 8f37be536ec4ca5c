"""Cron schedules: a ``k8x.schedule`` event for each service whose schedule
is due, once per due time, however many schedulers run.

- A due time is claimed by inserting ScheduleTick(service, due_at), which is
  unique: only the inserter emits.
- Only the *latest* due time at or before now is considered, so after
  downtime the missed ticks of a service run once, not once per tick; due
  times before the service existed are never emitted.
- The event id is deterministic (``<project>/<service>@<due time>``), so a
  re-emission (after a failed produce, or a scheduler that died between
  claiming and emitting) is recognised by the hub as a duplicate.
- A claimed tick is marked emitted (``event_id``) only after Kafka acknowledged
  it; unemitted ticks are retried after STALE_TICK_SECONDS.

What the hub receives (binary mode on the events topic):
type ``k8x.schedule``, source ``k8x/scheduler``, subject = the service name,
data ``{"service", "project", "scheduled_time"}``, extensions
``k8xproject=<project slug>``, ``k8xservice=<service name>`` (the one service
to run, with trigger kind ``schedule``) and a new ``correlationid``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from croniter import CroniterError, croniter
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from k8x_core.events.ce import EXT_PROJECT, EXT_SERVICE, ce_new, ce_new_correlation_id, ce_time_format
from k8x_core.kafka import KafkaError, kafka_produce_events
from k8x_core.metrics import SCHEDULER_SKIPPED
from k8x_core.models import ScheduleTick, Service

logger = logging.getLogger(__name__)

SCHEDULE_EVENT_TYPE = "k8x.schedule"
SCHEDULE_EVENT_SOURCE = "k8x/scheduler"
STALE_TICK_SECONDS = 30
SKIPPED = "skipped"


# Bounds on what a project may write: the search for a fire time never looks
# further than this (leap days are at most 8 years apart, 2096 -> 2104), and
# an expression is short, so parsing and searching stay in milliseconds.
SCHEDULE_MAX_YEARS = 10
SCHEDULE_MAX_CHARS = 120
SCHEDULE_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def schedule_validate(*, expression: str, now: datetime | None = None) -> str | None:
    """None if ``expression`` is a cron expression that fires, else why not.

    The one check of a schedule (console form, service directories, the
    scheduler itself): five fields (or a macro such as ``@daily``), and both
    a next and a previous fire time within SCHEDULE_MAX_YEARS of ``now``, so
    ``0 0 31 2 *`` (February 31st) is refused at save instead of failing
    every scheduler pass."""
    text = expression.strip()
    if not text:
        return "empty cron expression"
    if len(text) > SCHEDULE_MAX_CHARS:
        return f"cron expression longer than {SCHEDULE_MAX_CHARS} characters"
    if not (text.lower() in SCHEDULE_MACROS or len(text.split()) == 5) or not croniter.is_valid(text):
        return f"{text!r} is not a valid cron expression (five fields: minute hour day month weekday)"
    start = now or timezone.now()
    try:
        croniter(text, start, max_years_between_matches=SCHEDULE_MAX_YEARS).get_next(datetime)
        croniter(text, start, max_years_between_matches=SCHEDULE_MAX_YEARS).get_prev(datetime)
    except (CroniterError, ValueError, OverflowError):
        return f"cron expression {text!r} never fires (no fire time within {SCHEDULE_MAX_YEARS} years)"
    return None


def schedule_latest_due(*, expression: str, now: datetime) -> datetime:
    """The latest due time at or before ``now`` (UTC)."""
    # croniter's get_prev is strictly before its start; a microsecond later
    # makes "exactly now" count as due.
    start = now + timedelta(microseconds=1)
    return croniter(expression.strip(), start, max_years_between_matches=SCHEDULE_MAX_YEARS).get_prev(datetime)


def schedule_event(*, service: Service, due_at: datetime, now: datetime | None = None) -> dict[str, Any]:
    project = service.project.slug
    scheduled = ce_time_format(due_at)
    return ce_new(
        type=SCHEDULE_EVENT_TYPE,
        source=SCHEDULE_EVENT_SOURCE,
        id=f"{project}/{service.name}@{scheduled}",
        subject=service.name,
        time=now,
        data={"service": service.name, "project": project, "scheduled_time": scheduled},
        extensions={
            EXT_PROJECT: project,
            EXT_SERVICE: service.name,
            "correlationid": ce_new_correlation_id(),
        },
    )


def _emit(*, tick: ScheduleTick, service: Service, now: datetime) -> bool:
    event = schedule_event(service=service, due_at=tick.due_at, now=now)
    try:
        kafka_produce_events([event])
    except KafkaError as exc:
        # Left unemitted: retried by a later step once it is stale.
        logger.warning("schedule tick %s not emitted yet: %s", tick, exc)
        return False
    ScheduleTick.objects.filter(pk=tick.pk).update(event_id=event["id"])
    logger.info("scheduled %s at %s (event %s)", service, tick.due_at.isoformat(), event["id"])
    return True


def schedule_process_one(*, now: datetime | None = None) -> int:
    """One pass over all scheduled services; returns the events emitted."""
    now = now or timezone.now()
    emitted = 0
    services = Service.objects.select_related("project").filter(active=True).exclude(schedule="")
    for service in services:
        # One service's schedule (written by a project, possibly straight into
        # the database) never stops the others: any failure is logged, counted
        # and skipped, and the pass goes on.
        try:
            emitted += _schedule_service(service=service, now=now)
        except DatabaseError:
            raise  # the database is away: the command's loop backs off
        except Exception:
            SCHEDULER_SKIPPED.labels(reason="error").inc()
            logger.exception("service %s: schedule %r skipped", service, service.schedule)
    emitted += schedule_retry_stale(now=now)
    return emitted


def _schedule_service(*, service: Service, now: datetime) -> int:
    problem = schedule_validate(expression=service.schedule, now=now)
    if problem:
        SCHEDULER_SKIPPED.labels(reason="invalid").inc()
        logger.warning("service %s: %s", service, problem)
        return 0
    due = schedule_latest_due(expression=service.schedule, now=now)
    if due < service.created_at:
        return 0
    try:
        with transaction.atomic():
            tick = ScheduleTick.objects.create(service=service, due_at=due)
    except IntegrityError:
        return 0  # another scheduler (or an earlier pass) has it
    return int(_emit(tick=tick, service=service, now=now))


def schedule_retry_stale(*, now: datetime) -> int:
    """Emit claimed ticks whose emission failed or whose scheduler died.

    Staleness is measured on the wall clock (``created_at`` is set by the
    database row's save), whatever ``now`` a caller passes for due times."""
    emitted = 0
    wall = timezone.now()
    cutoff = wall - timedelta(seconds=STALE_TICK_SECONDS)
    stale = ScheduleTick.objects.select_related("service__project").filter(event_id="", created_at__lt=cutoff)
    for tick in stale[:100]:
        if ScheduleTick.objects.filter(service_id=tick.service_id, due_at__gt=tick.due_at).exists():
            # A later tick exists: missed ticks run once, and that one is it.
            ScheduleTick.objects.filter(pk=tick.pk, event_id="").update(event_id=SKIPPED)
            continue
        # Claim the retry: only one scheduler moves created_at forward.
        if (
            ScheduleTick.objects.filter(pk=tick.pk, event_id="", created_at=tick.created_at).update(created_at=wall)
            != 1
        ):
            continue
        emitted += _emit(tick=tick, service=tick.service, now=now)
    return emitted
