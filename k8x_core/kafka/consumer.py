"""The consumer side of the Kafka boundary: the hub's consumer and its
dead-letter producer. Nothing outside ``k8x_core.kafka`` sees a confluent-kafka
object; messages leave this module as plain ``HubMessage`` values.

Offsets are never committed automatically: the hub commits a batch's offsets
synchronously, and only after the batch's events and runs are in the database
(and its rejects in the dead-letter topic).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from django.conf import settings

logger = logging.getLogger(__name__)

# Headers the hub adds to a dead-lettered message (the original headers, key
# and value are kept as they were).
DLQ_HEADER_REASON = "k8x_dlq_reason"
DLQ_HEADER_TOPIC = "k8x_dlq_topic"
DLQ_HEADER_PARTITION = "k8x_dlq_partition"
DLQ_HEADER_OFFSET = "k8x_dlq_offset"
DLQ_HEADER_TIME = "k8x_dlq_time"
DLQ_HEADER_VALUE_DROPPED = "k8x_dlq_value_dropped"


class HubMessage(NamedTuple):
    """One consumed message (a tuple: the cheapest record to build per message)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: list[tuple[str, bytes]]
    value: bytes | None
    timestamp_ms: int | None = None

    @property
    def size(self) -> int:
        return len(self.value or b"") + sum(len(k) + len(v) for k, v in self.headers)


class DeadLetterUnavailable(Exception):
    """The dead-letter topic did not acknowledge; the batch's offsets must wait."""


def _bytes(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return value.encode()


def _message(msg: Message) -> HubMessage:
    # Without deserializers confluent-kafka gives bytes (or None) and header names
    # as str: its own list is kept as it is (rebuilding it per message was ~10 %
    # of the hub's time on a shared bus), unless a header has no value.
    headers: Any = msg.headers() or []
    for _name, raw in headers:
        if type(raw) is not bytes:
            headers = [(str(name), _bytes(value) or b"") for name, value in headers]
            break
    _kind, ts = msg.timestamp()
    return HubMessage(
        msg.topic() or "",
        msg.partition() or 0,
        msg.offset() or 0,
        msg.key(),
        headers,
        msg.value(),
        ts if ts and ts > 0 else None,
    )


def _log_error(err: KafkaError) -> None:
    if err.fatal():
        logger.error("kafka consumer fatal error: %s", err)
    else:
        # Broker away, leader change...: librdkafka reconnects by itself.
        logger.warning("kafka consumer: %s", err)


def commit_offsets(messages: Sequence[HubMessage]) -> list[tuple[str, int, int]]:
    """(topic, partition, next offset) to commit for a batch."""
    highest: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        if m.offset >= highest.get(key, -1):
            highest[key] = m.offset
    return [(t, p, o + 1) for (t, p), o in sorted(highest.items())]


class HubConsumer:
    """A consumer in the hub's group, reading in batches, committing by hand."""

    def __init__(
        self,
        *,
        topics: Sequence[str],
        group: str,
        bootstrap_servers: str | None = None,
        client_id: str = "k8x-hub",
        extra: dict[str, Any] | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": group,
            "client.id": client_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # A hub killed with -9 gives its partitions back within ~10 s.
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 2_000,
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 2_000,
            "error_cb": _log_error,
            "logger": logger,
            # Oversized events must reach the hub to be dead-lettered.
            "fetch.message.max.bytes": 16 * 1024 * 1024,
            # librdkafka prefetches up to 100,000 messages / 64 MB by default: on a
            # backlog that alone took the hub past 150 MB RSS. The cap is on memory
            # only (4 MB, about ten batches of typical events): a cap of 10,000
            # messages as well left the hub waiting on fetches ~30 % of the time;
            # 8 MB kept its peak RSS ~3 MB higher for no more events/s, and 2 MB
            # made it wait on fetches again (bench/bench_hub.py).
            "queued.max.messages.kbytes": 4 * 1024,
        }
        config.update(extra or {})
        self.topics = list(topics)
        self._consumer = Consumer(config)
        self._consumer.subscribe(
            self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self.assigned: set[tuple[str, int]] = set()

    # The hub processes each batch to its end before polling again, so on a
    # revoke nothing is in flight; the new owner starts at our last commit.
    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned = {(tp.topic, tp.partition) for tp in partitions}
        logger.info("assigned %s", sorted(self.assigned))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("revoked %s", sorted((tp.topic, tp.partition) for tp in partitions))
        self.assigned = set()

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.warning("lost %s", sorted((tp.topic, tp.partition) for tp in partitions))
        self.assigned = set()

    def poll_batch(self, *, max_messages: int = 500, timeout: float = 0.5) -> list[HubMessage]:
        out: list[HubMessage] = []
        for msg in self._consumer.consume(num_messages=max_messages, timeout=timeout):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    _log_error(err)
                continue
            out.append(_message(msg))
        return out

    def commit(self, messages: Sequence[HubMessage], *, attempts: int = 5) -> bool:
        """Commit a processed batch synchronously. False (logged) when it did
        not go through: the next batch's commit covers these partitions, and
        anything redelivered meanwhile is recognised as a duplicate."""
        offsets = [TopicPartition(t, p, o) for t, p, o in commit_offsets(messages)]
        if not offsets:
            return True
        delay = 0.2
        for attempt in range(1, attempts + 1):
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                return True
            except KafkaException as exc:
                err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                retriable = err is not None and err.retriable()
                logger.warning("offset commit failed (attempt %s/%s): %s", attempt, attempts, exc)
                if not retriable or attempt == attempts:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        return False

    def lag(self) -> dict[tuple[str, int], int]:
        """Messages behind the high watermark per assigned partition (from the
        last fetch's cached watermarks: no broker round trip)."""
        out: dict[tuple[str, int], int] = {}
        try:
            assignment = self._consumer.assignment()
            if not assignment:
                return out
            for tp in self._consumer.position(assignment):
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high is None or high < 0 or tp.offset < 0:
                    continue
                out[(tp.topic, tp.partition)] = max(high - tp.offset, 0)
        except KafkaException as exc:
            logger.debug("lag unavailable: %s", exc)
        return out

    def close(self) -> None:
        """Leave the group (a prompt rebalance for the other hubs)."""
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            logger.warning("consumer close: %s", exc)


class DeadLetterProducer:
    """Puts invalid messages on the dead-letter topic, unchanged, with the
    reason and their original coordinates as headers."""

    def __init__(self, *, topic: str | None = None, bootstrap_servers: str | None = None) -> None:
        self.topic = topic or settings.K8X_DLQ_TOPIC
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS,
                "client.id": "k8x-hub-dlq",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 10_000,
                "message.max.bytes": 16 * 1024 * 1024,
                "reconnect.backoff.ms": 100,
                "reconnect.backoff.max.ms": 2_000,
                "error_cb": self._on_error,
                "logger": logger,
            }
        )

    @staticmethod
    def _on_error(err: KafkaError) -> None:
        logger.warning("kafka dead-letter producer: %s", err)

    def send(self, rejects: Sequence[tuple[HubMessage, str]], *, timeout: float = 15.0) -> None:
        """Produce every reject and wait for all acknowledgements, or raise
        DeadLetterUnavailable (the caller retries the same rejects)."""
        if not rejects:
            return
        errors: list[KafkaError] = []
        too_large: list[tuple[HubMessage, str]] = []
        pending = [len(rejects)]

        def delivered(index: int) -> Any:
            def cb(err: KafkaError | None, _msg: Message) -> None:
                pending[0] -= 1
                if err is None:
                    return
                if err.code() in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE):
                    too_large.append(rejects[index])
                else:
                    errors.append(err)

            return cb

        for index, (msg, reason) in enumerate(rejects):
            self._produce(msg, reason, on_delivery=delivered(index), drop_value=False)
        remaining = self._producer.flush(timeout)
        if remaining or errors or pending[0]:
            raise DeadLetterUnavailable(
                f"dead-letter topic {self.topic!r} did not acknowledge "
                f"({remaining} waiting, errors: {[e.str() for e in errors][:3]})"
            )
        if too_large:
            # Even the broker's limit is exceeded: keep the reason and coordinates.
            self.send_without_value(too_large, timeout=timeout)

    def send_without_value(self, rejects: Sequence[tuple[HubMessage, str]], *, timeout: float) -> None:
        errors: list[KafkaError] = []

        def cb(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        for msg, reason in rejects:
            self._produce(msg, reason, on_delivery=cb, drop_value=True)
        if self._producer.flush(timeout) or errors:
            raise DeadLetterUnavailable(f"dead-letter topic {self.topic!r} did not acknowledge")

    def _produce(self, msg: HubMessage, reason: str, *, on_delivery: Any, drop_value: bool) -> None:
        headers: list[tuple[str, str | bytes | None]] = [] if drop_value else list(msg.headers)
        headers += [
            (DLQ_HEADER_REASON, reason.encode("utf-8", "replace")[:4096]),
            (DLQ_HEADER_TOPIC, msg.topic.encode()),
            (DLQ_HEADER_PARTITION, str(msg.partition).encode()),
            (DLQ_HEADER_OFFSET, str(msg.offset).encode()),
            (DLQ_HEADER_TIME, str(int(time.time() * 1000)).encode()),
        ]
        if drop_value:
            headers.append((DLQ_HEADER_VALUE_DROPPED, b"true"))
        value = None if drop_value else msg.value
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=msg.key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)

    def close(self, *, timeout: float = 5.0) -> None:
        self._producer.flush(timeout)
