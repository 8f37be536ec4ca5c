"""Fixtures for the hub's tests: real PostgreSQL (pytest-django test database
``test_<name>`` of DATABASE_URL), Redis (a queue of the test's own) and Kafka
(topics and consumer groups of the test's own, deleted afterwards)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django_rq
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings
from django.db import connection

from k8x_core.events.ce import ce_new, ce_to_kafka
from k8x_core.kafka.consumer import HubMessage
from k8x_core.models import Project, Service, Trigger
from k8x_core.runs.queue import CHUNK_JOB_PREFIX, LAUNCH_CHUNK_JOB

REPO = Path(__file__).resolve().parents[3]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def queued_run_ids(queue_name: str) -> set[str]:
    """Run ids with a launch job in the queue: ``launch-<run id>`` jobs, and
    the runs a chunk job (``launch-chunk-*``) carries."""
    queue = django_rq.get_queue(queue_name)
    out: set[str] = set()
    for job in queue.get_jobs():
        if job.id.startswith(CHUNK_JOB_PREFIX):
            assert job.func_name == LAUNCH_CHUNK_JOB
            out.update(job.args[0])
        else:
            out.add(job.id.removeprefix("launch-"))
    return out


@pytest.fixture
def project(db: None) -> Project:
    return Project.objects.create(slug=f"p{uuid.uuid4().hex[:8]}")


@pytest.fixture
def make_service(project: Project) -> Callable[..., Service]:
    def make(
        name: str, *, proj: Project | None = None, active: bool = True, triggers: list[dict[str, Any]] | None = None
    ) -> Service:
        service = Service.objects.create(project=proj or project, name=name, image="busybox", active=active)
        for t in triggers or []:
            Trigger.objects.create(service=service, **t)
        return service

    return make


def event(type: str = "com.acme.order.created", *, source: str = "/tests/hub", **kw: Any) -> dict[str, Any]:
    return ce_new(type=type, source=source, **kw)


def message(ev: dict[str, Any] | None = None, *, offset: int = 0, headers: Any = None, value: Any = None) -> HubMessage:
    """A Kafka message as the consumer hands it over (binary mode)."""
    if ev is not None:
        key, hdrs, val = ce_to_kafka(ev)
    else:
        key, hdrs, val = None, headers or [], value
    return HubMessage(topic="t", partition=0, offset=offset, key=key, headers=list(hdrs), value=val)


def structured(ev: dict[str, Any], *, offset: int = 0) -> HubMessage:
    return HubMessage(
        topic="t",
        partition=0,
        offset=offset,
        key=None,
        headers=[("content-type", b"application/cloudevents+json")],
        value=json.dumps(ev).encode(),
    )


# --- Kafka ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_admin() -> AdminClient:
    return AdminClient({"bootstrap.servers": BOOTSTRAP})


@pytest.fixture
def make_topic(kafka_admin: AdminClient) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(partitions: int = 1) -> str:
        name = f"k8x.test.hub.{uuid.uuid4().hex[:12]}"
        kafka_admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(
            timeout=30
        )
        made.append(name)
        return name

    yield make
    if made:
        for fut in kafka_admin.delete_topics(made).values():
            fut.result(timeout=30)


@pytest.fixture
def group(kafka_admin: AdminClient) -> Iterator[str]:
    name = f"k8x-test-hub-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        for fut in kafka_admin.delete_consumer_groups([name], request_timeout=30).values():
            fut.result()
    except Exception:  # noqa: S110  (a group that never committed does not exist)
        pass


def produce(topic: str, messages: list[tuple[bytes | None, Any, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    errors: list[KafkaError] = []

    def cb(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    for key, headers, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=list(headers), on_delivery=cb)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0
    assert not errors, errors


def produce_events(topic: str, events: list[dict[str, Any]]) -> None:
    produce(topic, [ce_to_kafka(ev) for ev in events])


def read_all(topic: str, *, expect: int, timeout: float = 30) -> list[Any]:
    """Every message of a topic (for checking the dead-letter topic)."""
    consumer = Consumer(
        {"bootstrap.servers": BOOTSTRAP, "group.id": f"reader-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                if msg.error() is None:
                    out.append(msg)
    finally:
        consumer.close()
    return out


# --- hub subprocesses -------------------------------------------------------------


def subprocess_env(*, topic: str, group: str, queue: str, dlq: str) -> dict[str, str]:
    """Environment for ``manage.py k8x_hub`` writing to the test database."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        K8X_EVENTS_TOPIC=topic,
        K8X_DLQ_TOPIC=dlq,
        K8X_HUB_GROUP=group,
        K8X_QUEUE=queue,
        KAFKA_BOOTSTRAP_SERVERS=BOOTSTRAP,
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    return env


def hub_process(env: dict[str, str], log: Path, *, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "k8x_hub", "--metrics-port", str(metrics_port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
