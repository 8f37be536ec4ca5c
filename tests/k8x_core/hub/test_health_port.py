"""The hub's health port (k8x_core.process.health): /healthz, /readyz and /metrics
answered by a real ``k8x_hub`` process consuming a topic of the test's own."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.k8x_core.process.procs import get, get_json, stop, wait_for
from tests.ports import free_port

from .conftest import hub_process, subprocess_env

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]


def test_hub_serves_health_ready_and_metrics(
    make_topic: Callable[..., str], group: str, queue_name: str, tmp_path: Path
) -> None:
    topic, dlq = make_topic(), make_topic()
    port = free_port()
    log = tmp_path / "hub.log"
    proc = hub_process(subprocess_env(topic=topic, group=group, queue=queue_name, dlq=dlq), log, metrics_port=port)
    try:
        wait_for(lambda: get(port, "/healthz")[0] == 200, timeout=60, what="hub /healthz", proc=proc, log=log)
        wait_for(lambda: get(port, "/readyz")[0] == 200, timeout=30, what="hub /readyz", proc=proc, log=log)
        status, doc = get_json(port, "/healthz")
        assert doc["alive"] is True and doc["role"] == "hub"
        status, body = get(port, "/metrics")
        assert status == 200 and "# TYPE k8x_hub_events_total counter" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        stop([proc])
