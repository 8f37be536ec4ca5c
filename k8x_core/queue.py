"""Queueing launches on RQ. The database stays the source of truth: a lost
queue entry is found again by the reconciler (worker.reconcile)."""

from __future__ import annotations

import uuid
from functools import partial

import django_rq
from django.conf import settings
from django.db import transaction
from rq import Queue

LAUNCH_JOB = "worker.jobs.launch_run"


def launch_queue() -> Queue:
    return django_rq.get_queue(settings.K8X_QUEUE)


def run_enqueue_now(*, run_id: uuid.UUID | str) -> None:
    # By dotted path: the domain does not import the worker.
    launch_queue().enqueue(LAUNCH_JOB, str(run_id), job_id=f"launch-{run_id}", result_ttl=0, failure_ttl=86400)


def run_enqueue(*, run_id: uuid.UUID | str) -> None:
    """Enqueue the launch once the surrounding transaction commits."""
    transaction.on_commit(partial(run_enqueue_now, run_id=run_id))


def runs_enqueue(*, run_ids: list[uuid.UUID] | list[str]) -> None:
    """Enqueue many launches on commit, in one Redis round trip."""

    def _push() -> None:
        queue = launch_queue()
        queue.enqueue_many(
            [
                Queue.prepare_data(LAUNCH_JOB, (str(rid),), job_id=f"launch-{rid}", result_ttl=0, failure_ttl=86400)
                for rid in run_ids
            ]
        )

    if run_ids:
        transaction.on_commit(_push)
