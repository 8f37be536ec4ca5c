"""The launch path's metrics: k8x_launch_latency_seconds (queued → Job created) and
k8x_launches_total{result}, observed by a real launch on the local cluster."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from k8x_core.metrics import REGISTRY
from k8x_core.models import Run, RunStatus, Service, TriggerKind
from k8x_core.watch.watcher import Watcher
from tests.k8x_core.runs.conftest import wait_run
from worker.jobs import launch_run

pytestmark = pytest.mark.cluster


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_launch_observes_its_latency_and_counts_its_result(make_service: Callable[..., Service]) -> None:
    service = make_service("latency")
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.QUEUED)
    count, total = sample("k8x_launch_latency_seconds_count"), sample("k8x_launch_latency_seconds_sum")
    started = sample("k8x_launches_total", {"result": "started"})
    skipped = sample("k8x_launches_total", {"result": "skipped"})

    assert launch_run(str(run.pk)) == "started"
    assert sample("k8x_launch_latency_seconds_count") == count + 1
    latency = sample("k8x_launch_latency_seconds_sum") - total
    assert 0 < latency < 60
    assert sample("k8x_launches_total", {"result": "started"}) == started + 1

    # Launched already: skipped, and no second latency sample.
    assert launch_run(str(run.pk)) == "skipped"
    assert sample("k8x_launch_latency_seconds_count") == count + 1
    assert sample("k8x_launches_total", {"result": "skipped"}) == skipped + 1


def test_followed_log_bytes_are_counted(make_service: Callable[..., Service], watcher: Watcher) -> None:
    """k8x_watch_log_bytes_total counts what the watcher's followers read from the cluster."""
    service = make_service("chatty", command=["sh", "-c", "sleep 2; for i in $(seq 1 200); do echo line-$i; done"])
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.QUEUED)
    before = sample("k8x_watch_log_bytes_total")
    assert launch_run(str(run.pk)) == "started"
    done = wait_run(run.pk)
    assert done.status == RunStatus.SUCCEEDED
    # Each line followed arrives with its RFC 3339 timestamp: at least the text itself was read.
    assert sample("k8x_watch_log_bytes_total") - before >= len("".join(f"line-{i}\n" for i in range(1, 201)))
