"""Queueing launches on RQ. The database stays the source of truth: a lost
queue entry is found again by the reconciler (worker.reconcile).

Two job shapes:

- ``worker.jobs.launch_run(run_id)``, job id ``launch-<run id>``: one run (the
  console, manual runs, the reconciler);
- ``worker.jobs.launch_runs(run_ids)``, job id ``launch-chunk-<hex>``: up to
  ``K8X_LAUNCH_CHUNK`` runs (the hub). Creating an RQ job costs ~100 us of
  Python; one per run was the hub's largest cost. Chunks stay small so several
  workers share a large batch and a chunk's last run is not delayed long.

A finished chunk job is kept for ``CHUNK_RESULT_TTL`` seconds rather than
deleted at once (``result_ttl=0``): rq's delete costs the worker seven Redis
round trips after every job, an expiry none (it goes in the job's closing
pipeline). Chunk job ids are never reused, and a finished job is not a live
one to the reconciler.

So that the reconciler can tell whether a run still has a live launch job,
every chunked run is listed in the Redis hash ``launch_jobs_key(queue)``
(run id -> chunk job id), written in the same pipeline (MULTI/EXEC) as the
jobs themselves; ``launch_runs`` removes its entries when it is done.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import partial

import django_rq
from django.conf import settings
from django.db import transaction
from rq import Queue

LAUNCH_JOB = "worker.jobs.launch_run"
LAUNCH_CHUNK_JOB = "worker.jobs.launch_runs"
CHUNK_JOB_PREFIX = "launch-chunk-"
CHUNK_RESULT_TTL = 60


# Redis server version per queue name: rq asks for it (an INFO round trip) on
# every new Queue object, and get_queue makes a new one on every call.
_server_versions: dict[str, tuple[int, int, int]] = {}


def launch_queue() -> Queue:
    queue = django_rq.get_queue(settings.K8X_QUEUE)
    version = _server_versions.get(queue.name)
    if version is not None:
        queue.redis_server_version = version
    return queue


def _remember_version(queue: Queue) -> None:
    if queue.redis_server_version:
        _server_versions[queue.name] = queue.redis_server_version


def launch_job_id(run_id: uuid.UUID | str) -> str:
    return f"launch-{run_id}"


def launch_jobs_key(queue_name: str) -> str:
    """The hash run id -> chunk job id of a queue's chunked launches."""
    return f"k8x:launch-jobs:{queue_name}"


def run_enqueue_now(*, run_id: uuid.UUID | str) -> None:
    # By dotted path: the domain does not import the worker.
    launch_queue().enqueue(LAUNCH_JOB, str(run_id), job_id=launch_job_id(run_id), result_ttl=0, failure_ttl=86400)


def run_enqueue(*, run_id: uuid.UUID | str) -> None:
    """Enqueue the launch once the surrounding transaction commits."""
    transaction.on_commit(partial(run_enqueue_now, run_id=run_id))


def runs_enqueue_each_now(*, run_ids: Sequence[uuid.UUID | str]) -> None:
    """One ``launch-<run id>`` job per run, in one Redis round trip (the
    reconciler: few runs, and a job id anyone can look up)."""
    if not run_ids:
        return
    launch_queue().enqueue_many(
        [
            Queue.prepare_data(LAUNCH_JOB, (str(rid),), job_id=launch_job_id(rid), result_ttl=0, failure_ttl=86400)
            for rid in run_ids
        ]
    )


def runs_enqueue_now(*, run_ids: Sequence[uuid.UUID | str], chunk: int | None = None) -> None:
    """Chunked launch jobs for many runs, and their hash entries, in one
    MULTI/EXEC round trip."""
    if not run_ids:
        return
    size = max(1, chunk or int(settings.K8X_LAUNCH_CHUNK))
    ids = [str(rid) for rid in run_ids]
    queue = launch_queue()
    datas = []
    listed: dict[str, str] = {}
    for start in range(0, len(ids), size):
        part = ids[start : start + size]
        job_id = f"{CHUNK_JOB_PREFIX}{uuid.uuid4().hex}"
        datas.append(
            Queue.prepare_data(LAUNCH_CHUNK_JOB, (part,), job_id=job_id, result_ttl=CHUNK_RESULT_TTL, failure_ttl=86400)
        )
        for rid in part:
            listed[rid] = job_id
    with queue.connection.pipeline() as pipe:
        # Listed first: a worker that picks a chunk up removes its entries.
        pipe.hset(launch_jobs_key(queue.name), mapping=listed)  # type: ignore[arg-type]
        queue.enqueue_many(datas, pipeline=pipe)
        pipe.execute()
    _remember_version(queue)


def runs_enqueue(*, run_ids: Sequence[uuid.UUID | str]) -> None:
    """Enqueue many launches on commit (chunked, one Redis round trip)."""
    if run_ids:
        transaction.on_commit(partial(runs_enqueue_now, run_ids=list(run_ids)))


def launch_jobs_lookup(*, queue_name: str, run_ids: Sequence[str]) -> list[str | None]:
    """The chunk job id each run is listed under (None: not listed)."""
    if not run_ids:
        return []
    values = launch_queue().connection.hmget(launch_jobs_key(queue_name), list(run_ids))
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def launch_jobs_forget(*, queue_name: str, run_ids: Sequence[str]) -> None:
    """Drop runs from the chunk hash (their chunk is done, or superseded)."""
    if run_ids:
        launch_queue().connection.hdel(launch_jobs_key(queue_name), *run_ids)
