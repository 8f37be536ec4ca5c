"""The reconciler: the database is the source of truth for runs, the RQ queue
only a hint. A ``queued`` run older than a bound whose launch job is not in
Redis (Redis restarted empty, an enqueue that failed after the hub's commit,
a job lost with a crashed worker) is enqueued again. Job ids are
deterministic (``launch-<run id>``) and the launcher claims a run by a
conditional status update, so a second enqueue never launches twice.

Run it with ``manage.py k8x_reconcile`` (a loop; ``--once`` for one pass).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from rq.job import Job, JobStatus

from k8x_core.models import Run, RunStatus
from k8x_core.queue import launch_queue, runs_enqueue

logger = logging.getLogger(__name__)

# A job in one of these states will still be (or is being) run by a worker.
LIVE_JOB_STATUSES = frozenset(
    {
        JobStatus.CREATED,
        JobStatus.QUEUED,
        JobStatus.STARTED,
        JobStatus.DEFERRED,
        JobStatus.SCHEDULED,
        JobStatus.RATE_LIMITED,
    }
)
_CHUNK = 1000


def _missing_jobs(run_ids: list[str]) -> list[str]:
    queue = launch_queue()
    jobs = Job.fetch_many([f"launch-{rid}" for rid in run_ids], connection=queue.connection)
    missing = []
    for rid, job in zip(run_ids, jobs, strict=True):
        status = job.get_status(refresh=False) if job is not None else None
        if status not in LIVE_JOB_STATUSES:
            missing.append(rid)
    return missing


def runs_reconcile(*, older_than: timedelta | float) -> int:
    """Re-enqueue ``queued`` runs created before ``now - older_than`` that
    have no live launch job. Returns how many were enqueued."""
    if not isinstance(older_than, timedelta):
        older_than = timedelta(seconds=older_than)
    cutoff = timezone.now() - older_than
    stale = [
        str(rid)
        for rid in Run.objects.filter(status=RunStatus.QUEUED, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("id", flat=True)
    ]
    enqueued = 0
    for start in range(0, len(stale), _CHUNK):
        missing = _missing_jobs(stale[start : start + _CHUNK])
        if not missing:
            continue
        # Still queued now? (A launcher may have claimed some meanwhile.)
        still = [
            str(rid) for rid in Run.objects.filter(pk__in=missing, status=RunStatus.QUEUED).values_list("id", flat=True)
        ]
        # Outside a transaction this enqueues at once.
        runs_enqueue(run_ids=still)
        enqueued += len(still)
    if enqueued:
        logger.warning("reconciler re-enqueued %s queued runs that had no launch job", enqueued)
    return enqueued
