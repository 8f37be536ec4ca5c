"""worker.health.HealthWorker against the real Redis: its standalone heartbeat
goes to Redis at most every HEARTBEAT_SECONDS."""

from __future__ import annotations

import django_rq
import pytest

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
