"""The hub against the real Kafka broker (in-process Hub, real consumer):
third-party producers (kcat) in both CloudEvents modes, the dead-letter topic,
committed offsets."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.db import connection

from k8x_core.events.ce import ce_to_kafka
from k8x_core.hub.loop import Hub
from k8x_core.kafka.consumer import DeadLetterProducer, HubConsumer
from k8x_core.models import Event, EventOutcome, Run, Trigger

from .conftest import BOOTSTRAP, event, produce, produce_events, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]


def make_hub(topic: str, group: str, dlq: str) -> Hub:
    return Hub(
        consumer=HubConsumer(topics=[topic], group=group),
        dead_letters=DeadLetterProducer(topic=dlq),
        poll_timeout=0.2,
    )


def run_until(hub: Hub, done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the hub did not get there in time"
        hub.step()


def committed(group: str, topic: str, partitions: int = 1) -> list[int]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


def kcat(topic: str, headers: dict[str, str], value: str) -> None:
    args = ["kcat", "-b", BOOTSTRAP, "-P", "-t", topic]
    for k, v in headers.items():
        args += ["-H", f"{k}={v}"]
    subprocess.run(args, input=value.encode(), check=True, timeout=30)


def test_kcat_binary_and_structured_events_become_runs(
    make_service: Any, make_topic: Callable[..., str], group: str, queue_name: str
) -> None:
    svc = make_service("orders", triggers=[{"event_type": "com.acme.order.created"}])
    topic, dlq = make_topic(), make_topic()
    binary_id, structured_id = f"kcat-{uuid.uuid4().hex}", f"kcat-{uuid.uuid4().hex}"
    kcat(
        topic,
        {
            "ce_specversion": "1.0",
            "ce_id": binary_id,
            "ce_source": "/kcat",
            "ce_type": "com.acme.order.created",
            "content-type": "application/json",
        },
        '{"amount": 12}',
    )
    structured = {
        "specversion": "1.0",
        "id": structured_id,
        "source": "/kcat",
        "type": "com.acme.order.created",
        "datacontenttype": "application/json",
        "data": {"amount": 34},
    }
    kcat(topic, {"content-type": "application/cloudevents+json"}, json.dumps(structured))
    hub = make_hub(topic, group, dlq)
    try:
        run_until(hub, lambda: Run.objects.count() == 2)
    finally:
        hub.close()
    binary = Event.objects.get(ce_id=binary_id)
    assert binary.outcome == EventOutcome.MATCHED
    assert binary.payload["data"] == {"amount": 12}
    assert Event.objects.get(ce_id=structured_id).payload["data"] == {"amount": 34}
    assert {r.service_id for r in Run.objects.all()} == {svc.id}
    # A third-party producer sets no correlation id: the hub made one per event.
    assert len({r.correlation_id for r in Run.objects.all()}) == 2
    assert committed(group, topic) == [2]


def test_poison_messages_go_to_the_dlq_and_the_hub_keeps_consuming(
    make_service: Any, make_topic: Callable[..., str], group: str, queue_name: str
) -> None:
    make_service("orders", triggers=[{"event_type": "com.acme.order.created"}])
    topic, dlq = make_topic(), make_topic()
    first, last = event(), event()
    produce(topic, [(b"k1", [], b"plain garbage")])
    produce_events(topic, [first])
    produce(topic, [(None, [("content-type", b"application/cloudevents+json")], b'{"specversion": "1.0"')])
    produce_events(topic, [last])
    hub = make_hub(topic, group, dlq)
    try:
        run_until(hub, lambda: Event.objects.count() == 4)
    finally:
        hub.close()
    assert Run.objects.filter(event__ce_id__in=[first["id"], last["id"]]).count() == 2
    rejected = list(Event.objects.filter(outcome=EventOutcome.REJECTED).order_by("kafka_offset"))
    assert [r.kafka_offset for r in rejected] == [0, 2]
    dead = sorted(read_all(dlq, expect=2), key=lambda m: m.offset())
    assert len(dead) == 2
    headers = [dict(m.headers()) for m in dead]
    assert headers[0]["k8x_dlq_reason"].decode().startswith("not a CloudEvent: no ce_* headers")
    assert headers[1]["k8x_dlq_reason"].decode().startswith("body is not valid JSON")
    assert [(h["k8x_dlq_topic"].decode(), h["k8x_dlq_partition"], h["k8x_dlq_offset"]) for h in headers] == [
        (topic, b"0", b"0"),
        (topic, b"0", b"2"),
    ]
    # The original message travels unchanged.
    assert (dead[0].key(), dead[0].value()) == (b"k1", b"plain garbage")
    assert rejected[0].reason == headers[0]["k8x_dlq_reason"].decode()
    assert committed(group, topic) == [4]


def test_a_header_without_a_value_is_read_as_empty(
    make_service: Any, make_topic: Callable[..., str], group: str, queue_name: str
) -> None:
    """The consumer keeps confluent-kafka's header list as it is, except when a
    header has no value: that one reads as empty and the event still runs."""
    make_service("orders", triggers=[{"event_type": "com.acme.order.created"}])
    topic, dlq = make_topic(), make_topic()
    ev = event(data={"n": 1})
    key, headers, value = ce_to_kafka(ev)
    produce(topic, [(key, [*headers, ("x-trace", None)], value)])
    hub = make_hub(topic, group, dlq)
    try:
        run_until(hub, lambda: Event.objects.count() == 1)
    finally:
        hub.close()
    recorded = Event.objects.get()
    assert (recorded.outcome, recorded.ce_id, recorded.payload["data"]) == (EventOutcome.MATCHED, ev["id"], {"n": 1})
    assert Run.objects.filter(event=recorded).count() == 1


def test_redelivery_after_an_uncommitted_batch_gives_no_second_run(
    make_service: Any, make_topic: Callable[..., str], group: str, queue_name: str
) -> None:
    """The batch is recorded but the hub dies before committing offsets: the
    next hub in the group reads it again and records duplicates only."""
    make_service("orders", triggers=[{"event_type": "com.acme.order.created"}])
    topic, dlq = make_topic(), make_topic()
    events = [event() for _ in range(20)]
    produce_events(topic, events)
    hub = make_hub(topic, group, dlq)
    hub.consumer.commit = lambda messages, **kw: True  # type: ignore[method-assign]  # "crash" before committing
    try:
        run_until(hub, lambda: Run.objects.count() == 20)
    finally:
        hub.close()
    assert committed(group, topic)[0] < 0  # nothing committed
    hub = make_hub(topic, group, dlq)
    try:
        run_until(hub, lambda: Event.objects.filter(outcome=EventOutcome.DUPLICATE).count() == 20)
    finally:
        hub.close()
    assert Run.objects.count() == 20
    assert committed(group, topic) == [20]


def test_database_outage_backs_off_and_retries_the_same_batch(
    make_service: Any, make_topic: Callable[..., str], group: str, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The database goes away between polling and recording (the hub's
    connection now points at a port nothing listens on): the hub logs, backs
    off, keeps the batch, and records it once the database is back; the
    offsets move only then."""
    make_service("orders", triggers=[{"event_type": "com.acme.order.created"}])
    topic, dlq = make_topic(), make_topic()
    events = [event() for _ in range(10)]
    produce_events(topic, events)
    hub = make_hub(topic, group, dlq)
    hub.refresh_index(force=True)
    real_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = "1"

    def restore() -> None:
        time.sleep(2.5)
        connection.settings_dict["PORT"] = real_port

    restorer = threading.Thread(target=restore)
    restorer.start()
    try:
        with caplog.at_level("WARNING", logger="k8x_core.hub.loop"):
            result = None
            deadline = time.monotonic() + 60
            while result is None and time.monotonic() < deadline:
                result = hub.step()
    finally:
        restorer.join()
        connection.settings_dict["PORT"] = real_port
        hub.close()
    assert result is not None
    assert result.counts == {"matched": 10}
    assert any("database unavailable, retrying the batch" in r.getMessage() for r in caplog.records)
    assert Run.objects.count() == 10
    assert committed(group, topic) == [10]


def test_a_trigger_added_while_the_hub_runs_applies_within_a_second(
    make_service: Any, make_topic: Callable[..., str], group: str, queue_name: str
) -> None:
    """Late linking: no restart, no per-event query; the index is reloaded
    when the trigger table's fingerprint changes."""
    svc = make_service("late")
    topic, dlq = make_topic(), make_topic()
    before, after = event(), event()
    produce_events(topic, [before])
    hub = make_hub(topic, group, dlq)
    try:
        run_until(hub, lambda: Event.objects.filter(ce_id=before["id"]).exists())
        Trigger.objects.create(service=svc, event_type="com.acme.order.*")
        time.sleep(hub.index_refresh_seconds + 0.1)
        produce_events(topic, [after])
        run_until(hub, lambda: Event.objects.filter(ce_id=after["id"]).exists())
    finally:
        hub.close()
    assert Event.objects.get(ce_id=before["id"]).outcome == EventOutcome.UNMATCHED
    assert Event.objects.get(ce_id=after["id"]).outcome == EventOutcome.MATCHED
    assert Run.objects.get().service_id == svc.id
