"""The only package that talks to Kafka (import-linter enforces it).

``producer``: putting CloudEvents on the events topic (edge adapters).
``consumer``: reading them (the hub).
"""

from __future__ import annotations

from k8x_core.kafka.producer import (
    KafkaError,
    KafkaMessageRejected,
    KafkaUnavailable,
    ProducedMessage,
    kafka_produce_events,
    kafka_producer_reset,
)

__all__ = [
    "KafkaError",
    "KafkaMessageRejected",
    "KafkaUnavailable",
    "ProducedMessage",
    "kafka_produce_events",
    "kafka_producer_reset",
]
