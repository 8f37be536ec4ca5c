"""``manage.py k8x_hub`` as real processes: kill -9 mid-stream and restart,
two hubs in one group, SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count

from k8x_core.models import Event, EventOutcome, Run

from .conftest import event, hub_process, produce_events, subprocess_env
from .test_kafka import committed

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def wait_for(
    cond: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    logs: list[Path] | None = None,
    detail: Callable[[], Any] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs or [] if p.exists())
            pytest.fail(f"timed out waiting for {what}: {detail() if detail else ''}\n{tails}")
        time.sleep(0.2)


def assert_exactly_one_run_per_event_and_service(ids: list[str], services: int) -> None:
    originals = Event.objects.filter(outcome__in=[EventOutcome.MATCHED, EventOutcome.UNMATCHED])
    assert originals.count() == len(ids)
    assert set(originals.values_list("ce_id", flat=True)) == set(ids)
    assert not originals.exclude(outcome=EventOutcome.MATCHED).exists()
    per_event = Run.objects.values("event_id").annotate(n=Count("id"), s=Count("service_id", distinct=True))
    assert {(row["n"], row["s"]) for row in per_event} == {(services, services)}
    assert Run.objects.count() == len(ids) * services
    # Every duplicate row points at its original and carries no run.
    dups = Event.objects.filter(outcome=EventOutcome.DUPLICATE)
    assert not dups.filter(duplicate_of__isnull=True).exists()
    assert not Run.objects.filter(event__outcome=EventOutcome.DUPLICATE).exists()


def test_kill_9_mid_stream_and_restart_loses_and_doubles_nothing(
    make_service: Any, make_topic: Callable[..., str], group: str, queue_name: str, tmp_path: Path, procs: list[Any]
) -> None:
    make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    make_service("b", triggers=[{"event_type": "com.acme.*"}])
    topic, dlq = make_topic(4), make_topic()
    events = [event(subject=f"order-{i}", data={"n": i}) for i in range(5000)]
    ids = [e["id"] for e in events]
    env = subprocess_env(topic=topic, group=group, queue=queue_name, dlq=dlq)
    log = tmp_path / "hub.log"

    def stream() -> None:
        for start in range(0, len(events), 250):
            produce_events(topic, events[start : start + 250])
            time.sleep(0.05)

    producer = threading.Thread(target=stream)
    procs.append(hub_process(env, log))
    producer.start()
    wait_for(lambda: Event.objects.count() >= 1000, timeout=90, what="the first 1000 events", logs=[log])
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait(10)
    recorded_at_kill = Event.objects.count()
    assert recorded_at_kill < 5000, "the stream was over before the kill; the test proves nothing"
    procs.append(hub_process(env, log))
    producer.join(120)
    wait_for(
        lambda: Event.objects.filter(outcome=EventOutcome.MATCHED).count() == 5000,
        timeout=180,
        what="all 5000 events after the restart",
        logs=[log],
    )
    wait_for(
        lambda: sum(max(o, 0) for o in committed(group, topic, 4)) == 5000,
        timeout=60,
        what="offsets committed",
        logs=[log],
        detail=lambda: committed(group, topic, 4),
    )
    assert_exactly_one_run_per_event_and_service(ids, services=2)


def test_two_hubs_in_one_group_split_the_work_without_duplicate_runs(
    make_service: Any, make_topic: Callable[..., str], group: str, queue_name: str, tmp_path: Path, procs: list[Any]
) -> None:
    make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    make_service("b", triggers=[{"event_type": "com.acme.order.*"}])
    topic, dlq = make_topic(4), make_topic()
    env = subprocess_env(topic=topic, group=group, queue=queue_name, dlq=dlq)
    logs = [tmp_path / "hub1.log", tmp_path / "hub2.log"]
    procs.extend(hub_process(env, log) for log in logs)
    # Both in the group, two partitions each, before the events arrive.
    wait_for(
        lambda: all(_last_assignment(log) for log in logs),
        timeout=60,
        what="both hubs to get partitions",
        logs=logs,
    )
    events = [event(subject=f"order-{i}", data={"n": i}) for i in range(4000)]
    produce_events(topic, events)
    wait_for(lambda: Run.objects.count() >= 8000, timeout=120, what="8000 runs", logs=logs)
    wait_for(
        lambda: sum(max(o, 0) for o in committed(group, topic, 4)) == 4000,
        timeout=60,
        what="offsets committed",
        logs=logs,
        detail=lambda: committed(group, topic, 4),
    )
    assignments = [_last_assignment(log) for log in logs]
    assert len(assignments[0]) == len(assignments[1]) == 2
    assert not assignments[0] & assignments[1]
    # Each hub recorded the events of its own partitions.
    partitions = set(Event.objects.values_list("kafka_partition", flat=True).distinct())
    assert partitions == {0, 1, 2, 3}
    assert_exactly_one_run_per_event_and_service([e["id"] for e in events], services=2)
    assert not Event.objects.filter(outcome=EventOutcome.DUPLICATE).exists()


def _metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except OSError as exc:
        return str(exc)


def _last_assignment(log: Path) -> set[int]:
    if not log.exists():
        return set()
    lines = [line for line in log.read_text().splitlines() if " assigned [" in line or " revoked [" in line]
    if not lines or " revoked [" in lines[-1]:
        return set()
    return {int(p) for p in __import__("re").findall(r", (\d+)\)", lines[-1])}


def test_sigterm_finishes_commits_and_exits_0(
    make_service: Any, make_topic: Callable[..., str], group: str, queue_name: str, tmp_path: Path, procs: list[Any]
) -> None:
    make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    topic, dlq = make_topic(), make_topic()
    log = tmp_path / "hub.log"
    env = subprocess_env(topic=topic, group=group, queue=queue_name, dlq=dlq)
    produce_events(topic, [event() for _ in range(300)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs.append(hub_process(env, log, metrics_port=port))
    wait_for(lambda: Run.objects.count() == 300, timeout=60, what="300 runs", logs=[log])
    # The hub's own metrics endpoint.
    wait_for(
        lambda: 'k8x_hub_events_total{outcome="matched"} 300.0' in _metrics(port),
        timeout=20,
        what="metrics",
        logs=[log],
        detail=lambda: _metrics(port),
    )
    metrics = _metrics(port)
    assert "k8x_hub_runs_queued_total 300.0" in metrics
    assert "k8x_hub_batch_seconds_count" in metrics
    procs[0].send_signal(signal.SIGTERM)
    assert procs[0].wait(30) == 0
    assert committed(group, topic) == [300]
    text = log.read_text()
    assert "finishing the current batch" in text
    assert "hub stopped" in text
