"""RQ jobs. The hub (and the console) enqueue ``worker.jobs.launch_run`` by dotted
path with a run id; everything else is the domain's (``k8x_core.launch``)."""

from __future__ import annotations

from k8x_core.launch import run_launch


def launch_run(run_id: str) -> str:
    """Launch one queued run as a Kubernetes Job; returns what happened
    (started, adopted, deferred, skipped, failed). Cluster unavailable: raises,
    the run stays queued and the reconciler enqueues it again."""
    return run_launch(run_id=run_id).value
