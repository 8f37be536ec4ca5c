"""Every long-running process but the web answers /healthz, /readyz and /metrics on
its health port: asked of real processes (scheduler, reconciler, an rqworker with
worker.health.HealthWorker, the watcher) started as `make up` starts them."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from redis import Redis
from rq import Queue

from k8x_core.metrics import QUEUE_DEPTH, collect_queue_depth
from k8x_core.process.health import ProcessHealth, health_alive, health_serve
from tests.ports import free_port

from .procs import get, get_json, metric, process_env, start, stop, wait_for


def test_alive_only_while_the_loop_steps() -> None:
    assert not health_alive(last_step=None, now=100.0, stale_seconds=60)
    assert health_alive(last_step=50.0, now=109.9, stale_seconds=60)
    assert not health_alive(last_step=40.0, now=100.0, stale_seconds=60)


def test_a_stuck_loop_fails_healthz_and_a_failing_check_fails_readyz() -> None:
    health = ProcessHealth(role="test", stale_seconds=0.5)
    problems: dict[str, str] = {}
    health.ready_check = lambda: dict(problems)
    server = health_serve(health=health, port=free_port(), addr="127.0.0.1")
    assert server is not None
    try:
        status, doc = get_json(server.port, "/readyz")
        assert (status, doc["problems"]) == (503, {"loop": "not started yet"})
        health.beat()
        assert get_json(server.port, "/healthz")[0] == 200
        assert get_json(server.port, "/readyz") == (200, {"ready": True, "role": "test", "problems": {}})
        problems["redis"] = "Connection refused"
        assert get_json(server.port, "/readyz")[1]["problems"] == {"redis": "Connection refused"}
        time.sleep(0.6)
        status, doc = get_json(server.port, "/healthz")
        assert status == 503 and doc["alive"] is False and doc["last_step_seconds_ago"] >= 0.5
        assert get(server.port, "/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_queue_depth_is_read_from_redis(queue_name: str) -> None:
    queue = Queue(queue_name, connection=Redis.from_url(settings.REDIS_URL))
    for _ in range(3):
        queue.enqueue("worker.jobs.launch_run", str(uuid.uuid4()))
    collect_queue_depth()
    assert QUEUE_DEPTH.labels(queue=queue_name)._value.get() == 3


def _assert_serves(port: int, *, role: str, proc: subprocess.Popen[bytes], log: Path) -> str:
    """Wait until alive and ready; the /metrics text."""
    wait_for(lambda: get(port, "/healthz")[0] == 200, timeout=60, what=f"{role} /healthz", proc=proc, log=log)
    wait_for(lambda: get(port, "/readyz")[0] == 200, timeout=30, what=f"{role} /readyz", proc=proc, log=log)
    status, doc = get_json(port, "/healthz")
    assert doc["alive"] is True and doc["role"] == role
    status, body = get(port, "/metrics")
    assert status == 200
    return body


@pytest.mark.django_db(transaction=True)
def test_scheduler_and_reconciler_serve_health_and_metrics(tmp_path: Path) -> None:
    procs = []
    try:
        ports = {"scheduler": free_port(), "reconciler": free_port()}
        logs = {name: tmp_path / f"{name}.log" for name in ports}
        procs.append(
            start(["k8x_scheduler", "--health-port", str(ports["scheduler"])], log=logs["scheduler"], env=process_env())
        )
        procs.append(
            start(
                ["k8x_reconcile", "--health-port", str(ports["reconciler"])], log=logs["reconciler"], env=process_env()
            )
        )
        body = _assert_serves(ports["scheduler"], role="scheduler", proc=procs[0], log=logs["scheduler"])
        # Without leader election the one scheduler leads.
        assert 'k8x_leader{role="scheduler"} 1.0' in body
        body = _assert_serves(ports["reconciler"], role="reconciler", proc=procs[1], log=logs["reconciler"])
        assert "# TYPE k8x_launch_latency_seconds histogram" in body
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
    finally:
        stop(procs)


@pytest.mark.django_db(transaction=True)
def test_worker_serves_health_and_counts_jobs(tmp_path: Path, queue_name: str) -> None:
    port = free_port()
    log = tmp_path / "worker.log"
    proc = start(
        ["rqworker", "--worker-class", "worker.health.HealthWorker", queue_name],
        log=log,
        env=process_env(K8X_HEALTH_PORT=str(port)),
    )
    try:
        _assert_serves(port, role="worker", proc=proc, log=log)
        queue = Queue(queue_name, connection=Redis.from_url(settings.REDIS_URL))
        # Runs that do not exist: each launch is "skipped", each RQ job finishes.
        for _ in range(2):
            queue.enqueue("worker.jobs.launch_run", str(uuid.uuid4()))
        wait_for(
            lambda: metric(port, 'k8x_worker_jobs_total{outcome="finished"}') == 2.0,
            timeout=30,
            what="2 finished jobs in the worker's metrics",
            proc=proc,
            log=log,
        )
        assert metric(port, 'k8x_launches_total{result="skipped"}') == 2.0
        assert metric(port, f'k8x_queue_depth{{queue="{queue_name}"}}') == 0.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        stop([proc])


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_watcher_serves_health_and_metrics(tmp_path: Path, kube_cluster: Any, kube_namespace: str) -> None:
    port = free_port()
    log = tmp_path / "watcher.log"
    env = process_env(KUBECONFIG=kube_cluster.kubeconfig)
    proc = start(["k8x_watch", "--namespace", kube_namespace, "--health-port", str(port)], log=log, env=env)
    try:
        body = _assert_serves(port, role="watcher", proc=proc, log=log)
        assert 'k8x_leader{role="watcher"} 1.0' in body
        assert "k8x_watch_log_bytes_total" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        stop([proc])
