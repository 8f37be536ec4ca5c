"""Prometheus metrics. The web process serves REGISTRY on /metrics; the hub
and the worker serve their own counters on their own ports (README)."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.db.models import Count
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis import Redis

from k8x_core.models import Event, Run

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS_BY_STATUS = Gauge("k8x_runs", "Runs in the database by status", ["status"], registry=REGISTRY)
EVENTS_BY_OUTCOME = Gauge("k8x_events", "Events in the database by outcome", ["outcome"], registry=REGISTRY)

HUB_EVENTS = Counter("k8x_hub_events", "Events consumed by the hub, by outcome", ["outcome"], registry=REGISTRY)
HUB_RUNS_QUEUED = Counter("k8x_hub_runs_queued", "Runs queued by the hub", registry=REGISTRY)
HUB_BATCH_SECONDS = Histogram("k8x_hub_batch_seconds", "Time to process one consumed batch", registry=REGISTRY)
HUB_LAG = Gauge("k8x_hub_consumer_lag", "Consumer lag by partition", ["topic", "partition"], registry=REGISTRY)
BRIDGE_EVENTS = Counter(
    "k8x_bridge_events", "Events accepted by the HTTP bridge, by endpoint", ["endpoint"], registry=REGISTRY
)
SCHEDULER_SKIPPED = Counter(
    "k8x_scheduler_skipped", "Schedules skipped in a scheduler pass, by reason", ["reason"], registry=REGISTRY
)
LAUNCHES = Counter("k8x_launches", "Launch attempts by result", ["result"], registry=REGISTRY)


@lru_cache(maxsize=1)
def redis_client() -> Redis:
    return Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def collect_database_gauges() -> None:
    RUNS_BY_STATUS.clear()
    for status, n in Run.objects.order_by().values_list("status").annotate(n=Count("pk")):
        RUNS_BY_STATUS.labels(status=status).set(n)
    EVENTS_BY_OUTCOME.clear()
    for outcome, n in Event.objects.order_by().values_list("outcome").annotate(n=Count("pk")):
        EVENTS_BY_OUTCOME.labels(outcome=outcome).set(n)
