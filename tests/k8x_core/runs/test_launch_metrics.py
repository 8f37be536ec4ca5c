"""The launch path's metrics: k8x_launch_latency_seconds (queued → Job created) and
k8x_launches_total{result}, observed by a real launch on the local cluster."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from k8x_core.metrics import REGISTRY
from k8x_core.models import Run, RunStatus, Service, TriggerKind
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
