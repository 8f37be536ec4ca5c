"""The reconciler: the database is the source of truth for runs, the RQ queue
only a hint. A ``queued`` run older than a bound whose launch job is not in
Redis (Redis restarted empty, an enqueue that failed after the hub's commit,
a job lost with a crashed worker) is enqueued again. A run's launch job is
either its own (``launch-<run id>``) or the hub's chunk job listed for it in
``k8x_core.runs.queue.launch_jobs_key``; the run has a live job if either is
live. The launcher claims a run by a conditional status update and Job names
are deterministic, so a second enqueue never launches twice.

Run it with ``manage.py k8x_reconcile`` (a loop; ``--once`` for one pass).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from rq.job import Job, JobStatus

from k8x_core.models import Run, RunStatus
from k8x_core.runs.queue import (
    launch_job_id,
    launch_jobs_forget,
    launch_jobs_lookup,
    launch_queue,
    runs_enqueue_each_now,
)

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


def _live(job: Job | None) -> bool:
    return job is not None and job.get_status(refresh=False) in LIVE_JOB_STATUSES


def _missing_jobs(run_ids: list[str]) -> list[str]:
    queue = launch_queue()
    chunk_ids = launch_jobs_lookup(queue_name=queue.name, run_ids=run_ids)
    wanted = sorted({launch_job_id(rid) for rid in run_ids} | {c for c in chunk_ids if c})
    jobs = dict(zip(wanted, Job.fetch_many(wanted, connection=queue.connection), strict=True))
    missing = []
    stale_entries = []
    for rid, chunk_id in zip(run_ids, chunk_ids, strict=True):
        if _live(jobs[launch_job_id(rid)]):
            continue
        if chunk_id and _live(jobs[chunk_id]):
            continue
        missing.append(rid)
        if chunk_id:
            stale_entries.append(rid)
    launch_jobs_forget(queue_name=queue.name, run_ids=stale_entries)
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
        runs_enqueue_each_now(run_ids=still)
        enqueued += len(still)
    if enqueued:
        logger.warning("reconciler re-enqueued %s queued runs that had no launch job", enqueued)
    return enqueued
