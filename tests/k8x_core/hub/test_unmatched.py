"""The unmatched-event policy through the real broker and the hub: every
unmatched event is counted per (project, type); only the newest
K8X_HUB_UNMATCHED_SAMPLE per (project, type) are kept as Event rows, which is
what the console's Events page filtered on ``unmatched`` shows; duplicates are
kept for matched events only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from k8x_core.metrics import REGISTRY
from k8x_core.models import Event, EventOutcome, Run, UnmatchedCount

from .conftest import event, produce_events
from .test_kafka import committed, make_hub, run_until

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]

NOISE, QUIET, ORDERS = "org.noise.tick", "org.noise.rare", "com.acme.order.created"


def unmatched_total() -> float:
    return REGISTRY.get_sample_value("k8x_hub_events_total", {"outcome": "unmatched"}) or 0.0


def counted(type_: str) -> int:
    row = UnmatchedCount.objects.filter(project=None, type=type_).first()
    return row.count if row else 0


def kept(type_: str) -> set[str]:
    return set(Event.objects.filter(outcome=EventOutcome.UNMATCHED, type=type_).values_list("ce_id", flat=True))


def test_unmatched_events_are_counted_and_a_bounded_sample_is_kept(
    make_service: Callable[..., Any], make_topic: Callable[..., str], group: str, queue_name: str, settings: Any
) -> None:
    settings.K8X_HUB_UNMATCHED_SAMPLE = 5
    make_service("orders", triggers=[{"event_type": ORDERS}])
    noise = [event(NOISE) for _ in range(30)]
    quiet = [event(QUIET) for _ in range(3)]
    orders = [event(ORDERS) for _ in range(2)]
    # Redeliveries: an unmatched one (counted again) and a matched one (a duplicate).
    topic = make_topic()
    produce_events(topic, noise + quiet + orders + [noise[0], orders[0]])
    total = len(noise) + len(quiet) + len(orders) + 2
    metric_before = unmatched_total()
    hub = make_hub(topic, group, make_topic())
    try:
        run_until(hub, lambda: counted(NOISE) + counted(QUIET) == 34 and Event.objects.count() >= 11)
        # Phase 2: more of the busy type; the sample stays at its bound and moves on.
        later = [event(NOISE) for _ in range(10)]
        produce_events(topic, later)
        run_until(hub, lambda: counted(NOISE) == 41)
    finally:
        hub.close()
    assert committed(group, topic) == [total + len(later)]
    assert unmatched_total() - metric_before == 44
    assert counted(QUIET) == 3
    # The quiet type keeps every event; the busy one its newest 5 only.
    assert kept(QUIET) == {e["id"] for e in quiet}
    assert kept(NOISE) == {e["id"] for e in later[-5:]}
    assert Event.objects.filter(outcome=EventOutcome.UNMATCHED).count() == 8
    sample = Event.objects.filter(outcome=EventOutcome.UNMATCHED, type=QUIET).first()
    assert sample is not None and sample.reason == "no active trigger matches" and sample.payload["type"] == QUIET
    # Matched events: one row each, one run each, the redelivery a duplicate.
    assert set(Event.objects.filter(outcome=EventOutcome.MATCHED).values_list("ce_id", flat=True)) == {
        e["id"] for e in orders
    }
    dup = Event.objects.get(outcome=EventOutcome.DUPLICATE)
    assert dup.ce_id == orders[0]["id"] and dup.duplicate_of is not None
    assert Run.objects.count() == 2
    # The console's "why didn't my service run?" view lists the sample.
    admin = User.objects.create_superuser("unmatched-admin", "a@example.com", "pw")
    client = Client()
    client.force_login(admin)
    page = client.get(reverse("console:event_list"), {"outcome": "unmatched"}).content.decode()
    assert QUIET in page and NOISE in page and ORDERS not in page
