"""Producing CloudEvents to Kafka (binary mode, ``ce_*`` headers).

One long-lived idempotent producer per process (``acks=all``), created on
first use. ``kafka_produce_events`` returns only once the broker acknowledged
every message, or raises:

- ``KafkaUnavailable``: not acknowledged within the bound (broker down,
  unreachable, queue full). The caller answers 503 + Retry-After.
- ``KafkaMessageRejected``: the broker or client refuses the message for good
  (e.g. too large). Retrying will not help.

Honesty of "not accepted": ``message.timeout.ms`` is set a little under the
bound, so librdkafka itself gives up on the message before the caller stops
waiting and nothing said "failed" is still queued to be sent later. A message
that was already on the wire when it timed out may nevertheless have been
written by the broker: the client sees 503, retries, and the hub recognises
the second copy by ``source`` + ``id``. So delivery is at least once, never
"reported accepted but lost".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError as _CKafkaError
from confluent_kafka import KafkaException, Message, Producer
from django.conf import settings

from k8x_core.events.ce import ce_to_kafka

logger = logging.getLogger(__name__)

# librdkafka needs a little time after message.timeout.ms to report it.
_TIMEOUT_MARGIN_SECONDS = 0.3
_POLL_SECONDS = 0.05


class KafkaError(Exception):
    """Base of what producing can raise."""


class KafkaUnavailable(KafkaError):
    """The broker did not acknowledge within the bound; nothing was accepted."""


class KafkaMessageRejected(KafkaError):
    """The message will never be accepted as it is (e.g. too large)."""


@dataclass(frozen=True)
class ProducedMessage:
    topic: str
    partition: int
    offset: int


_lock = threading.RLock()
_producer: Producer | None = None
_producer_config: tuple[str, float] | None = None


def _config(*, timeout_seconds: float) -> dict[str, Any]:
    message_timeout_ms = max(int((timeout_seconds - _TIMEOUT_MARGIN_SECONDS) * 1000), 500)
    return {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "client.id": "k8x-bridge",
        "enable.idempotence": True,
        "acks": "all",
        # Send at once: a lone event is not held back (1 ms vs 3 ms to 202 at
        # linger 2), and under load librdkafka batches what queues up while
        # the previous request is in flight anyway (bench/bench_bridge.py).
        "linger.ms": float(settings.K8X_PRODUCE_LINGER_MS),
        "message.timeout.ms": message_timeout_ms,
        # Back at work soon after the broker returns, without a restart.
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
        "retry.backoff.ms": 100,
        "socket.connection.setup.timeout.ms": max(message_timeout_ms, 1000),
        # Events up to the broker's limit (K8X_MAX_EVENT_BYTES is checked first).
        "message.max.bytes": max(2 * settings.K8X_MAX_EVENT_BYTES, 1_000_000),
        "error_cb": _on_error,
        "logger": logger,
    }


def _on_error(err: _CKafkaError) -> None:
    # Transport errors while the broker is away are normal and retried by
    # librdkafka; a fatal error means this producer instance is finished.
    if err.fatal():
        logger.error("kafka producer fatal error, will recreate: %s", err)
        kafka_producer_reset()
    else:
        logger.warning("kafka producer: %s", err)


def _get_producer(*, timeout_seconds: float) -> Producer:
    global _producer, _producer_config
    wanted = (settings.KAFKA_BOOTSTRAP_SERVERS, timeout_seconds)
    with _lock:
        if _producer is None or _producer_config != wanted:
            # The old producer (if any) is flushed by its poller thread.
            _producer = Producer(_config(timeout_seconds=timeout_seconds))
            _producer_config = wanted
            # One thread serves every delivery callback, so each request only
            # waits on its own event (many pollers would steal each other's
            # callbacks and sleep out their poll timeouts).
            threading.Thread(target=_poll_loop, args=(_producer,), name="k8x-kafka-poll", daemon=True).start()
        return _producer


def _poll_loop(producer: Producer) -> None:
    while True:
        with _lock:
            current = producer is _producer
        if not current:
            # Replaced or reset: serve what is still pending, then stop.
            producer.flush(30)
            return
        try:
            producer.poll(_POLL_SECONDS)
        except Exception:  # a callback raised; keep serving the others
            logger.exception("kafka producer poll failed")


def kafka_producer_reset() -> None:
    """Forget the process's producer (tests, fatal errors); the next call
    creates a new one."""
    global _producer, _producer_config
    with _lock:
        _producer = None
        _producer_config = None


class _Waiter:
    """Collects the delivery reports of one call's messages (served on the
    poller thread) and wakes the caller once all are in."""

    def __init__(self, count: int) -> None:
        self.pending = count
        self.errors: list[_CKafkaError] = []
        self.results: dict[int, ProducedMessage] = {}
        self.done = threading.Event()
        self._lock = threading.Lock()

    def callback(self, index: int) -> Any:
        def on_delivery(err: _CKafkaError | None, msg: Message) -> None:
            with self._lock:
                if err is not None:
                    self.errors.append(err)
                else:
                    self.results[index] = ProducedMessage(
                        topic=msg.topic() or "", partition=msg.partition() or 0, offset=msg.offset() or 0
                    )
                self.pending -= 1
                finished = self.pending == 0
            if finished:
                self.done.set()
                self._finished()

        return on_delivery

    def _finished(self) -> None:
        pass

    def outcome(self, count: int) -> list[ProducedMessage]:
        if self.errors:
            _raise_for(self.errors)
        return [self.results[i] for i in range(count)]


class _AsyncWaiter(_Waiter):
    """Resolves an asyncio future on the caller's loop instead, so waiting for
    the broker holds no thread (one ``call_soon_threadsafe`` per call)."""

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(count)
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def _finished(self) -> None:
        # RuntimeError: the loop is closed, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


def _raise_for(errors: Sequence[_CKafkaError]) -> None:
    for err in errors:
        if err.code() in (_CKafkaError.MSG_SIZE_TOO_LARGE, _CKafkaError.INVALID_MSG_SIZE):
            raise KafkaMessageRejected(f"Kafka refused the event: {err.str()}")
    raise KafkaUnavailable(f"Kafka did not accept the event: {errors[0].str()}")


def _try_produce(producer: Producer, topic: str, message: Any, on_delivery: Any) -> bool:
    """Hand one message to librdkafka: False when its local queue is full
    (try again later); raises for a message it will never take."""
    key, headers, value = message
    typed_headers: list[tuple[str, str | bytes | None]] = list(headers)
    try:
        producer.produce(topic, value=value, key=key, headers=typed_headers, on_delivery=on_delivery)
    except BufferError:
        return False
    except KafkaException as exc:
        err = exc.args[0] if exc.args and isinstance(exc.args[0], _CKafkaError) else None
        if err is not None and err.code() in (_CKafkaError.MSG_SIZE_TOO_LARGE, _CKafkaError.INVALID_MSG_SIZE):
            raise KafkaMessageRejected(f"Kafka refused the event: {err.str()}") from exc
        raise KafkaUnavailable(f"Kafka did not accept the event: {exc}") from exc
    return True


def _queue_full() -> KafkaUnavailable:
    return KafkaUnavailable("Kafka is not taking events (producer queue full)")


def kafka_produce_events(
    events: Sequence[Mapping[str, Any]],
    *,
    topic: str | None = None,
    timeout_seconds: float | None = None,
) -> list[ProducedMessage]:
    """Produce each event (structured JSON form) in binary mode and wait for
    the broker's acknowledgement of all of them."""
    if not events:
        return []
    bound = settings.K8X_PRODUCE_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    topic = topic or settings.K8X_EVENTS_TOPIC
    deadline = time.monotonic() + bound
    producer = _get_producer(timeout_seconds=bound)
    messages = [ce_to_kafka(event) for event in events]
    waiter = _Waiter(len(messages))
    try:
        for index, message in enumerate(messages):
            while not _try_produce(producer, topic, message, waiter.callback(index)):
                # Local queue full (broker away for a while): wait within the bound.
                if time.monotonic() >= deadline:
                    raise _queue_full()
                time.sleep(_POLL_SECONDS)
    except KafkaError:
        _abandon(producer, waiter)
        raise
    waiter.done.wait(max(deadline - time.monotonic(), 0))
    if not waiter.done.is_set():
        _abandon(producer, waiter)
        raise KafkaUnavailable(f"Kafka did not acknowledge within {bound:g} s")
    return waiter.outcome(len(messages))


async def kafka_produce_events_async(
    events: Sequence[Mapping[str, Any]],
    *,
    topic: str | None = None,
    timeout_seconds: float | None = None,
) -> list[ProducedMessage]:
    """``kafka_produce_events`` for the event loop: the same guarantees, but
    waiting for the acknowledgements holds no thread."""
    if not events:
        return []
    loop = asyncio.get_running_loop()
    bound = settings.K8X_PRODUCE_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    topic = topic or settings.K8X_EVENTS_TOPIC
    deadline = time.monotonic() + bound
    producer = _get_producer(timeout_seconds=bound)
    messages = [ce_to_kafka(event) for event in events]
    waiter = _AsyncWaiter(len(messages), loop)
    try:
        for index, message in enumerate(messages):
            while not _try_produce(producer, topic, message, waiter.callback(index)):
                if time.monotonic() >= deadline:
                    raise _queue_full()
                await asyncio.sleep(_POLL_SECONDS)
        # shield: a timeout must not cancel the future the poller resolves.
        await asyncio.wait_for(asyncio.shield(waiter.future), max(deadline - time.monotonic(), 0))
    except KafkaError:
        await _abandon_async(producer, waiter)
        raise
    except TimeoutError:
        await _abandon_async(producer, waiter)
        raise KafkaUnavailable(f"Kafka did not acknowledge within {bound:g} s") from None
    return waiter.outcome(len(messages))


def _purge_queued(producer: Producer) -> None:
    try:
        producer.purge(in_queue=True, in_flight=False, blocking=False)
    except KafkaException:  # pragma: no cover - purge only fails on a dead producer
        logger.exception("kafka producer purge failed")


def _abandon(producer: Producer, waiter: _Waiter) -> None:
    """Make sure what we report as failed is not sent later: drop what is
    still queued locally (other callers' queued messages fail too, and they
    report 503 honestly), then collect the callbacks."""
    if waiter.done.is_set():
        return
    _purge_queued(producer)
    # The poller thread serves the purged messages' callbacks.
    waiter.done.wait(1.0)


async def _abandon_async(producer: Producer, waiter: _AsyncWaiter) -> None:
    """``_abandon`` without blocking the event loop."""
    if waiter.done.is_set():
        return
    _purge_queued(producer)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(waiter.future), 1.0)
