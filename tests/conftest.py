"""Shared test set-up. Integration tests run against the real services that
`make test` starts (PostgreSQL, Redis, Kafka, the local cluster)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue

from tests.kafka_support import topic_create, topic_delete

_HERE = Path(__file__).parent

# The local-cluster fixtures (kube_cluster, kube_api, kube_namespace).
pytest_plugins = ["tests.cluster_fixtures"] if (_HERE / "cluster_fixtures.py").exists() else []


@pytest.fixture
def queue_name(settings: Any) -> Iterator[str]:
    """An RQ queue of this test's own, so launch jobs never reach a worker of
    a running `make up` or of another test; emptied and deleted afterwards."""
    name = f"k8x-test-{uuid.uuid4().hex[:10]}"
    settings.K8X_QUEUE = name
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, name: {"URL": settings.REDIS_URL}}
    redis_url = settings.REDIS_URL
    yield name
    queue = Queue(name, connection=Redis.from_url(redis_url))
    queue.empty()
    queue.delete(delete_jobs=True)


@pytest.fixture
def topic(settings: Any) -> Iterator[str]:
    """An events topic of this test's own (3 partitions); K8X produces to it."""
    name = f"test.events.{uuid.uuid4().hex}"
    topic_create(name)
    settings.K8X_EVENTS_TOPIC = name
    yield name
    topic_delete(name)
