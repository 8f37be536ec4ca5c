"""Prometheus metrics. The web process serves REGISTRY on /metrics; every other
long-running process serves its own on its health port (k8x_core.process.health,
K8X_HEALTH_PORT). deploy/grafana/k8x.json charts them."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.db.models import Count
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis import Redis
from rq import Queue

from k8x_core.models import Event, Run

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS_BY_STATUS = Gauge("k8x_runs", "Runs in the database by status", ["status"], registry=REGISTRY)
EVENTS_BY_OUTCOME = Gauge("k8x_events", "Events in the database by outcome", ["outcome"], registry=REGISTRY)

HUB_EVENTS = Counter("k8x_hub_events", "Events consumed by the hub, by outcome", ["outcome"], registry=REGISTRY)
HUB_RUNS_QUEUED = Counter("k8x_hub_runs_queued", "Runs queued by the hub", registry=REGISTRY)
HUB_BATCH_SECONDS = Histogram("k8x_hub_batch_seconds", "Time to process one consumed batch", registry=REGISTRY)
HUB_CEL_OVER_BUDGET = Counter(
    "k8x_hub_cel_over_budget", "CEL evaluations stopped at K8X_CEL_BUDGET_MS (no match)", registry=REGISTRY
)
HUB_LAG = Gauge("k8x_hub_consumer_lag", "Consumer lag by partition", ["topic", "partition"], registry=REGISTRY)
BRIDGE_EVENTS = Counter(
    "k8x_bridge_events", "Events accepted by the HTTP bridge, by endpoint", ["endpoint"], registry=REGISTRY
)
SCHEDULER_SKIPPED = Counter(
    "k8x_scheduler_skipped", "Schedules skipped in a scheduler pass, by reason", ["reason"], registry=REGISTRY
)
LAUNCHES = Counter("k8x_launches", "Launch attempts by result", ["result"], registry=REGISTRY)
LAUNCH_LATENCY = Histogram(
    "k8x_launch_latency_seconds",
    "From a run being queued to its Job being created",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "k8x_queue_depth", "Jobs waiting in the RQ queue (read at scrape time)", ["queue"], registry=REGISTRY
)
WORKER_JOBS = Counter("k8x_worker_jobs", "RQ jobs performed by the worker, by outcome", ["outcome"], registry=REGISTRY)
WATCH_LOG_BYTES = Counter("k8x_watch_log_bytes", "Log bytes the watcher followed into runs' logs", registry=REGISTRY)
RETENTION_DELETED = Counter(
    "k8x_retention_deleted",
    "Rows deleted by retention, by kind (runs, events, audit, ...)",
    ["kind"],
    registry=REGISTRY,
)
RETENTION_PASSES = Counter(
    "k8x_retention_passes", "Retention passes: complete, or partial (batch budget spent)", ["result"], registry=REGISTRY
)
LEADER = Gauge(
    "k8x_leader", "1 while this process leads its role (always 1 without leader election)", ["role"], registry=REGISTRY
)


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


def collect_queue_depth() -> None:
    """Set k8x_queue_depth for K8X's launch queue (called at scrape time)."""
    QUEUE_DEPTH.labels(queue=settings.K8X_QUEUE).set(Queue(settings.K8X_QUEUE, connection=redis_client()).count)
