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

from k8x_core.hub.loop import Decoded
from k8x_core.hub.unmatched import unmatched_sample_pick, unmatched_sample_reset
from k8x_core.metrics import REGISTRY
from k8x_core.models import Event, EventOutcome, Run, UnmatchedCount

from .conftest import event, message, produce_events
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
    # A fresh sampling budget every batch: the window itself is shown below.
    settings.K8X_HUB_UNMATCHED_SAMPLE_SECONDS = 0
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
    # With the count of every unmatched event, beside the sample.
    assert f'<td class="mono">{NOISE}</td><td>platform</td><td>41</td>' in page


def decoded(type_: str) -> tuple[Decoded, str]:
    ev = event(type_)
    return Decoded(message(ev), ev, None, "c", 0, ""), "no active trigger matches"


def test_each_type_writes_at_most_its_sample_per_window() -> None:
    """20 busy types on one bus: the sample writes 3 rows per type per
    window, not the newest 3 of every batch; a new window refills it."""
    unmatched_sample_reset()
    busy = [decoded(f"org.noise.t{i % 20}") for i in range(500)]
    first = unmatched_sample_pick(busy, per_type=3, window_seconds=10, now=100.0)
    assert len(first) == 60
    # The newest of the batch, in batch order.
    assert [d.event["id"] for d, _ in first] == [d.event["id"] for d, _ in busy[-60:]]
    assert unmatched_sample_pick(busy, per_type=3, window_seconds=10, now=105.0) == []
    quiet = [decoded("org.quiet")]
    assert unmatched_sample_pick(quiet, per_type=3, window_seconds=10, now=105.0) == quiet
    assert len(unmatched_sample_pick(busy, per_type=3, window_seconds=10, now=110.0)) == 60
    # One row per event key: a redelivery within the batch is not sampled twice.
    again = decoded("org.again")
    assert unmatched_sample_pick([again, again], per_type=3, window_seconds=10, now=200.0) == [again]
