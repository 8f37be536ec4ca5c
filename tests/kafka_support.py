"""Reading back what the bridge produced, from the real broker."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass

from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = "127.0.0.1:9092"


@dataclass
class Record:
    key: bytes | None
    headers: dict[str, bytes]
    value: bytes
    partition: int
    offset: int

    def sdk_event(self):
        """Decoded by the cloudevents SDK (binary mode)."""
        return sdk_kafka.from_binary(sdk_kafka.KafkaMessage(self.headers, self.key, self.value), JSONFormat())


def _headers(raw) -> dict[str, bytes]:
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    return {k: v for k, v in items if isinstance(v, bytes)}


def topic_create(name: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        meta = admin.list_topics(name, timeout=5)
        if name in meta.topics and len(meta.topics[name].partitions) == partitions:
            return
        time.sleep(0.1)


def topic_delete(name: str) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    # Best effort: a topic left behind only costs disk.
    with contextlib.suppress(Exception):
        admin.delete_topics([name])[name].result(timeout=10)


def topic_count(name: str, attempts: int = 20) -> int:
    """Messages in the topic (sum of high watermarks). Retries while the
    broker is briefly without a leader (e.g. another test restarting it)."""
    for attempt in range(attempts):
        try:
            return _topic_count(name)
        except KafkaException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _topic_count(name: str) -> int:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"test-{uuid.uuid4().hex}"})
    try:
        meta = consumer.list_topics(name, timeout=10)
        total = 0
        for partition in meta.topics[name].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def topic_read(name: str, expected: int, timeout: float = 20.0) -> list[Record]:
    """Every message of the topic, waiting until ``expected`` arrived; then
    checks nothing more is there."""
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(name, timeout=10)
        consumer.assign([TopicPartition(name, p, 0) for p in meta.topics[name].partitions])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            records.append(
                Record(
                    key=msg.key(),
                    headers=_headers(msg.headers()),
                    value=msg.value() or b"",
                    partition=msg.partition() or 0,
                    offset=msg.offset() or 0,
                )
            )
        return records
    finally:
        consumer.close()
