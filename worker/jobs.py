"""RQ jobs. The hub (and the console) enqueue ``worker.jobs.launch_run`` by dotted
path with a run id; everything else is the domain's (``k8x_core.runs.launch``)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from rq import get_current_job

from k8x_core.metrics import LAUNCHES
from k8x_core.process.pool import pool_map
from k8x_core.runs.launch import run_launch
from k8x_core.runs.queue import launch_jobs_forget

log = logging.getLogger(__name__)


def _waited_seconds() -> float:
    job = get_current_job()
    return (datetime.now(UTC) - job.enqueued_at.replace(tzinfo=UTC)).total_seconds() if job and job.enqueued_at else 0.0


def _launch(run_id: str, waited: float) -> str:
    t0 = time.perf_counter()
    result = run_launch(run_id=run_id).value
    LAUNCHES.labels(result=result).inc()
    log.info(
        "run %s: %s in %.1f ms (%.1f ms in the queue)", run_id, result, (time.perf_counter() - t0) * 1000, waited * 1000
    )
    return result


def launch_run(run_id: str) -> str:
    """Launch one queued run as a Kubernetes Job; returns what happened
    (started, adopted, deferred, skipped, failed). Cluster unavailable: raises,
    the run stays queued and the reconciler enqueues it again."""
    return _launch(run_id, _waited_seconds())


def launch_runs(run_ids: list[str]) -> dict[str, str]:
    """Launch a chunk of queued runs (the hub enqueues one such job per up to
    ``K8X_LAUNCH_CHUNK`` runs), on up to ``K8X_LAUNCH_THREADS`` threads. Each run
    is launched on its own: one that fails does not stop the others; it stays
    queued and the reconciler enqueues it again. Raises at the end if any
    failed, so the chunk shows up in RQ's failed jobs. Returns run id -> what
    happened."""
    waited = _waited_seconds()
    outcomes = pool_map(lambda rid: _launch(rid, waited), run_ids, threads=int(settings.K8X_LAUNCH_THREADS))
    results: dict[str, str] = {}
    failed: list[str] = []
    for run_id, outcome in zip(run_ids, outcomes, strict=True):
        if outcome.error is None and outcome.value is not None:
            results[run_id] = outcome.value
            continue
        log.error(
            "run %s: launch failed (it stays queued; the reconciler will enqueue it again)",
            run_id,
            exc_info=outcome.error,
        )
        results[run_id] = "error"
        failed.append(run_id)
    job = get_current_job()
    if job is not None and job.origin:
        try:
            launch_jobs_forget(queue_name=job.origin, run_ids=run_ids)
        except Exception:
            # Only bookkeeping: a stale entry points at a finished job, which
            # the reconciler treats as no job.
            log.warning("could not clear the chunk entries of %s runs", len(run_ids), exc_info=True)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(run_ids)} launches failed: {', '.join(failed[:10])}")
    return results
