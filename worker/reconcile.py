"""The reconciler: the database is the source of truth for runs, the RQ queue
only a hint. A ``queued`` run older than a bound whose launch job is not in
Redis (Redis restarted empty, an enqueue that failed after the hub's commit,
a job lost with a crashed worker) is enqueued again. A run's launch job is
either its own (``launch-<run id>``) or the hub's chunk job listed for it in
``k8x_core.runs.queue.launch_jobs_key``; the run has a live job if either is
live. The launcher claims a run by a conditional status update and Job names
are deterministic, so a second enqueue never launches twice.

A run whose notification is still pending (its notifications job was lost with
Redis when the run ended) gets that job again (``notify_reconcile``).

Pending notification deliveries whose job is gone (Redis lost it, its worker
died mid-attempt) are enqueued again the same way, or marked ``failed`` once
they have used their attempts (``deliveries_reconcile``).

Run it with ``manage.py k8x_reconcile`` (a loop; ``--once`` for one pass).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rq.job import Job, JobStatus

from k8x_core.models import DeliveryStatus, NotificationDelivery, Run, RunStatus
from k8x_core.notify.deliveries import deliveries_enqueue_now, delivery_job_id
from k8x_core.runs.finish import notify_job_id, run_notify_enqueue_now, runs_notify_lost
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
    have no live launch job. Runs of paused services wait for the resume (which
    enqueues them), so they are left alone. Returns how many were enqueued."""
    if not isinstance(older_than, timedelta):
        older_than = timedelta(seconds=older_than)
    cutoff = timezone.now() - older_than
    stale = [
        str(rid)
        for rid in Run.objects.filter(status=RunStatus.QUEUED, created_at__lt=cutoff, service__paused=False)
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
            str(rid)
            for rid in Run.objects.filter(pk__in=missing, status=RunStatus.QUEUED, service__paused=False).values_list(
                "id", flat=True
            )
        ]
        runs_enqueue_each_now(run_ids=still)
        enqueued += len(still)
    if enqueued:
        logger.warning("reconciler re-enqueued %s queued runs that had no launch job", enqueued)
    return enqueued


def deliveries_reconcile(*, older_than: timedelta | float) -> int:
    """Re-enqueue ``pending`` notification deliveries untouched since ``now -
    older_than`` that have no live job (one waiting for its retry has a scheduled
    job, so it is left alone); those past their attempts are marked failed.
    Returns how many were enqueued."""
    if not isinstance(older_than, timedelta):
        older_than = timedelta(seconds=older_than)
    cutoff = timezone.now() - older_than
    pending = list(
        NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING, updated_at__lt=cutoff)
        .order_by("pk")
        .values_list("id", "attempts")[:_CHUNK]
    )
    if not pending:
        return 0
    jobs = Job.fetch_many([delivery_job_id(pk) for pk, _ in pending], connection=launch_queue().connection)
    lost = [(pk, attempts) for (pk, attempts), job in zip(pending, jobs, strict=True) if not _live(job)]
    used_up = [pk for pk, attempts in lost if attempts > int(settings.K8X_NOTIFY_RETRIES)]
    NotificationDelivery.objects.filter(pk__in=used_up, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, updated_at=timezone.now()
    )
    again = [pk for pk, attempts in lost if attempts <= int(settings.K8X_NOTIFY_RETRIES)]
    deliveries_enqueue_now(delivery_ids=again)
    if again:
        logger.warning("reconciler re-enqueued %s notification deliveries that had no job", len(again))
    return len(again)


def notify_reconcile(*, older_than: timedelta | float) -> int:
    """Enqueue again the notifications job of runs that ended before ``now -
    older_than`` with their notification still pending and no live job.
    Returns how many were enqueued."""
    if not isinstance(older_than, timedelta):
        older_than = timedelta(seconds=older_than)
    pending = runs_notify_lost(ended_before=timezone.now() - older_than, limit=_CHUNK)
    if not pending:
        return 0
    jobs = Job.fetch_many([notify_job_id(rid) for rid in pending], connection=launch_queue().connection)
    lost = [rid for rid, job in zip(pending, jobs, strict=True) if not _live(job)]
    for rid in lost:
        run_notify_enqueue_now(run_id=rid)
    if lost:
        logger.warning("reconciler re-enqueued the notifications of %s ended runs", len(lost))
    return len(lost)
