"""What follows a run's end: its notifications job (``worker.notify_jobs.notify_run``),
enqueued once the change commits, and only when an active rule of the run's
project may want this status (a cheap filter: ``k8x_core.notify.rules`` decides
exactly, e.g. whether a success follows a failure). Cancelled runs are never
notified."""

from __future__ import annotations

import logging
import uuid
from functools import partial
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
        # robust: Redis away must not fail the watcher or launcher that ended the run
        # (the notification is lost then, and the error logged).
        transaction.on_commit(partial(run_notify_enqueue_now, run_id=run_id), robust=True)
    return wanted
