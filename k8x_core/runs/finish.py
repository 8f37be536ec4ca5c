"""What follows a run's end: its notifications job (``worker.notify_jobs.notify_run``),
enqueued once the change commits, and only when an active rule of the run's
project may want this status (a cheap filter: ``k8x_core.notify.rules`` decides
exactly, e.g. whether a success follows a failure). Cancelled runs are never
notified. The run is marked ``notify_pending`` in the transaction that ends it
and cleared once its deliveries exist (``run_notify_done``), so a job lost
with Redis is enqueued again by the reconciler (``worker.reconcile``)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet, Subquery

from k8x_core.models import NotificationRule, Run, RunStatus
from k8x_core.runs.queue import launch_queue

log = logging.getLogger(__name__)

NOTIFY_RUN_JOB = "worker.notify_jobs.notify_run"

# Which rule flag may want a run that ended in this status.
RULE_FLAG = {
    RunStatus.FAILED: "on_failed",
    RunStatus.TIMED_OUT: "on_timed_out",
    RunStatus.SUCCEEDED: "on_recovered",
}


def notify_job_id(run_id: uuid.UUID | str) -> str:
    return f"notify-{run_id}"


def run_notify_enqueue_now(*, run_id: uuid.UUID | str) -> None:
    # By dotted path: the runs stage does not import the worker or k8x_core.notify.
    launch_queue().enqueue(NOTIFY_RUN_JOB, str(run_id), job_id=notify_job_id(run_id), result_ttl=0, failure_ttl=86400)


def rules_wanting(*, project_id: Any, service_id: Any, flag: str) -> QuerySet[NotificationRule]:
    """The active rules of a project (for all its services, or for this one) with
    ``flag`` set (ids or subqueries). The one definition of which rules apply."""
    return NotificationRule.objects.filter(
        Q(service__isnull=True) | Q(service_id=service_id), project_id=project_id, active=True, **{flag: True}
    )


def run_finished(*, run_id: uuid.UUID | str, status: RunStatus | str) -> bool:
    """Called by ``run_transition`` after it moved a run to a terminal status.
    True when the notifications job will be enqueued (on commit)."""
    flag = RULE_FLAG.get(RunStatus(status))
    if flag is None:
        return False
    run = Run.objects.filter(pk=run_id)
    wanted = rules_wanting(
        project_id=Subquery(run.values("service__project_id")[:1]),
        service_id=Subquery(run.values("service_id")[:1]),
        flag=flag,
    ).exists()
    if wanted:
        Run.objects.filter(pk=run_id).update(notify_pending=True)
        # robust: Redis away must not fail the watcher or launcher that ended the run; the
        # reconciler enqueues it later. A lambda, not a partial: Django logs a failing robust
        # callback by its __qualname__, which a partial lacks (AttributeError in the watcher).
        transaction.on_commit(lambda: run_notify_enqueue_now(run_id=run_id), robust=True)
    return wanted


def run_notify_done(*, run_id: uuid.UUID | str) -> None:
    """The run's deliveries exist (or none are wanted): its notification is no longer pending."""
    Run.objects.filter(pk=run_id, notify_pending=True).update(notify_pending=False)


def runs_notify_lost(*, ended_before: Any, limit: int) -> list[str]:
    """Runs whose notification is still pending after ``ended_before`` (candidates for the
    reconciler, which checks whether their job is still in Redis)."""
    return [
        str(pk)
        for pk in Run.objects.filter(
            Q(finished_at__lt=ended_before) | Q(finished_at__isnull=True, created_at__lt=ended_before),
            notify_pending=True,
        )
        .order_by("finished_at")
        .values_list("id", flat=True)[:limit]
    ]
