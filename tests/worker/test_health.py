"""worker.health.HealthWorker against the real Redis: its standalone heartbeat
goes to Redis at most every HEARTBEAT_SECONDS."""

from __future__ import annotations

import django_rq
import pytest
from rq.worker import WorkerStatus

from worker.health import HealthWorker


def test_heartbeat_reaches_redis_at_most_every_few_seconds(queue_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = django_rq.get_queue(queue_name)
    worker = HealthWorker([queue], connection=queue.connection)
    worker.register_birth()
    try:
        worker.heartbeat()
        first = queue.connection.hget(worker.key, "last_heartbeat")
        assert first and not worker._ready_problems()
        for _ in range(20):
            worker.heartbeat()
        assert queue.connection.hget(worker.key, "last_heartbeat") == first
        monkeypatch.setattr(HealthWorker, "HEARTBEAT_SECONDS", 0.0)
        worker.heartbeat()
        assert queue.connection.hget(worker.key, "last_heartbeat") != first
    finally:
        worker.register_death()


def test_an_unchanged_state_is_not_written_again(queue_name: str) -> None:
    """rq sets "idle" after every job and again before the next dequeue: the second
    write is skipped; a change, or a write inside a pipeline, always goes."""
    queue = django_rq.get_queue(queue_name)
    worker = HealthWorker([queue], connection=queue.connection)
    worker.register_birth()
    try:
        worker.set_state(WorkerStatus.IDLE)
        assert queue.connection.hget(worker.key, "state") == b"idle"
        queue.connection.hset(worker.key, "state", "marker")
        worker.set_state(WorkerStatus.IDLE)
        assert queue.connection.hget(worker.key, "state") == b"marker"  # not written again
        assert worker.get_state() == WorkerStatus.IDLE
        worker.set_state(WorkerStatus.BUSY)
        assert queue.connection.hget(worker.key, "state") == b"busy"
        with queue.connection.pipeline() as pipe:
            worker.set_state(WorkerStatus.BUSY, pipeline=pipe)
            pipe.hset(worker.key, "state", "marker")
            pipe.execute()
        worker.set_state(WorkerStatus.IDLE)
        assert queue.connection.hget(worker.key, "state") == b"idle"
    finally:
        worker.register_death()
