""" "Send test event" and "replay" from the console put real CloudEvents on (a test topic of) Kafka."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from django.urls import reverse

from tests.console.conftest import World, client_for

pytestmark = [pytest.mark.django_db, pytest.mark.kafka]

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


@pytest.fixture
def topic(settings: Any) -> Iterator[str]:
    name = f"k8x.events.console-test-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)
    settings.K8X_EVENTS_TOPIC = name
    settings.K8X_RATE_LIMIT_PER_MINUTE = 0
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


def read_events(topic: str, expect: int) -> list[dict[str, Any]]:
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"console-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: list[dict[str, Any]] = []
    try:
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if len(found) >= expect:
                    break
                continue
            headers: dict[str, str] = {
                str(h[0]): h[1].decode() if isinstance(h[1], bytes) else str(h[1]) for h in (msg.headers() or [])
            }
            value = msg.value() or b""
            event: dict[str, Any]
            if "ce_id" in headers:  # binary mode
                event = {k.removeprefix("ce_"): v for k, v in headers.items() if k.startswith("ce_")}
                event["data"] = json.loads(value) if value else None
            else:
                event = json.loads(value)
            found.append(event)
    finally:
        consumer.close()
    return found


def test_send_test_event(world: World, topic: str) -> None:
    client = client_for(world.user)
    response = client.post(
        reverse("console:event_send"),
        {
            "project": world.acme.pk,
            "event_type": "com.acme.order.created",
            "event_source": "k8x.console",
            "subject": "order-1",
            "payload": '{"amount": 150}',
        },
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/events/sent/")
    (event,) = read_events(topic, 1)
    assert event["type"] == "com.acme.order.created" and event["data"] == {"amount": 150}
    assert event["k8xproject"] == "acme"  # scoped to the chosen project
    assert response["Location"] == f"/events/sent/{event['correlationid']}/"
    # Until the hub records it, the landing page waits (and refreshes itself).
    waiting = client.get(response["Location"])
    assert waiting.status_code == 200 and b'http-equiv="refresh"' in waiting.content


def test_send_test_event_refused_for_a_foreign_project(world: World, topic: str) -> None:
    response = client_for(world.user).post(
        reverse("console:event_send"),
        {"project": world.other.pk, "event_type": "x.y", "event_source": "s", "payload": "{}"},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert read_events(topic, 0) == []


def test_replay_publishes_a_copy_with_new_id_same_flow(world: World, topic: str) -> None:
    client = client_for(world.user)
    response = client.post(reverse("console:event_replay", args=[world.event.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("console:correlation_detail", args=["flow-acme"])
    (event,) = read_events(topic, 1)
    assert event["id"] != world.event.ce_id
    assert event["type"] == "com.acme.order" and event["source"] == "/shop"
    assert event["correlationid"] == "flow-acme"
    assert event["k8xproject"] == "acme"
    assert event["data"] == {"n": 1}
