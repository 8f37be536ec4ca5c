"""The bridge's event-loop producer: 202-grade results only after the broker
acknowledged, KafkaUnavailable within the bound when it cannot, and the rate
limit taken on the loop."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from k8x_core.events.ingest import IngestRefused, Sender, event_accept_async, rate_limit_take_async
from k8x_core.kafka import KafkaUnavailable
from k8x_core.kafka.producer import kafka_produce_events_async, kafka_producer_reset
from k8x_core.metrics import redis_client
from tests.kafka_support import topic_count, topic_read

pytestmark = [pytest.mark.kafka]


def _event(i: int) -> dict:
    return {"specversion": "1.0", "id": f"a-{i}-{uuid.uuid4().hex}", "source": "/async", "type": "com.acme.a"}


def test_concurrent_calls_each_get_their_own_acknowledgements(topic):
    async def main():
        return await asyncio.gather(*(kafka_produce_events_async([_event(i), _event(i)]) for i in range(20)))

    results = asyncio.run(main())
    assert len(results) == 20
    offsets = {(m.partition, m.offset) for produced in results for m in produced}
    assert len(offsets) == 40  # every message acknowledged at its own place
    assert all(m.topic == topic for produced in results for m in produced)
    assert topic_count(topic) == 40


def test_unreachable_broker_is_unavailable_within_the_bound(settings, topic):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # nothing listens there
    bound = 1.5
    try:
        started = time.monotonic()
        with pytest.raises(KafkaUnavailable):
            asyncio.run(kafka_produce_events_async([_event(0)], timeout_seconds=bound))
        assert time.monotonic() - started <= bound + 1.2  # the bound, plus collecting the purged callbacks
    finally:
        kafka_producer_reset()


def test_accept_async_reads_back_scoped(topic):
    sender = Sender(kind="apikey", project_slug="proj-a", rate_key="")
    accepted = asyncio.run(event_accept_async(events=[_event(1)], sender=sender))
    assert len(accepted) == 1 and accepted[0].correlation_id
    record = topic_read(topic, 1)[0]
    assert record.sdk_event().get_id() == accepted[0].id
    assert record.sdk_event().get_extension("k8xproject") == "proj-a"


def test_rate_limit_async_refuses_over_budget_and_keeps_it(settings):
    key = f"test-async-{uuid.uuid4().hex}"
    now = 1_000_000.0 * 60 + 10

    async def main():
        await rate_limit_take_async(key=key, count=2, limit=3, now=now)
        with pytest.raises(IngestRefused) as refused:
            await rate_limit_take_async(key=key, count=2, limit=3, now=now)
        await rate_limit_take_async(key=key, count=1, limit=3, now=now)
        return refused.value

    refused = asyncio.run(main())
    assert refused.status == 429 and refused.retry_after == 50
    assert int(redis_client().get(f"k8x:rate:{key}:{int(now // 60)}") or 0) == 3
