"""RQ jobs. The hub (and the console) enqueue ``worker.jobs.launch_run`` by dotted
path with a run id; everything else is the domain's (``k8x_core.launch``)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from rq import get_current_job

from k8x_core.launch import run_launch

log = logging.getLogger(__name__)


def launch_run(run_id: str) -> str:
    """Launch one queued run as a Kubernetes Job; returns what happened
    (started, adopted, deferred, skipped, failed). Cluster unavailable: raises,
    the run stays queued and the reconciler enqueues it again."""
    t0 = time.perf_counter()
    job = get_current_job()
    waited = (
        (datetime.now(UTC) - job.enqueued_at.replace(tzinfo=UTC)).total_seconds() if job and job.enqueued_at else 0.0
    )
    result = run_launch(run_id=run_id).value
    log.info(
        "run %s: %s in %.1f ms (%.1f ms in the queue)", run_id, result, (time.perf_counter() - t0) * 1000, waited * 1000
    )
    return result
