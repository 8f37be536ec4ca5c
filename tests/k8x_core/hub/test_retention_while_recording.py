"""Retention deletes old rows in batches while a real hub (``manage.py k8x_hub``) records a
stream from a Kafka topic of the test's own: the hub loses nothing, retention takes exactly the old rows."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from k8x_core.models import Event, EventOutcome, Project, Run, RunStatus, TriggerKind
from k8x_core.retention import retention_apply

from .conftest import event, hub_process, produce_events, subprocess_env
from .test_kafka import committed
from .test_processes import assert_exactly_one_run_per_event_and_service, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]

OLD_EVENTS = 3000
NEW_EVENTS = 2000


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def _old_rows(project: Project, service_id: int) -> tuple[set[int], set[Any]]:
    """OLD_EVENTS events 40 days old (half of them platform-wide), each with a run as old."""
    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(
            ce_id=f"old-{i}",
            source="/tests/old",
            type="com.acme.order.created",
            outcome=EventOutcome.MATCHED,
            project=project if i % 2 else None,
        )
        for i in range(OLD_EVENTS)
    )
    event_ids = {e.pk for e in events}
    Event.objects.filter(pk__in=event_ids).update(received_at=now - timedelta(days=40))
    runs = Run.objects.bulk_create(
        Run(service_id=service_id, event=e, trigger_kind=TriggerKind.EVENT, status=RunStatus.SUCCEEDED) for e in events
    )
    run_ids = {r.pk for r in runs}
    Run.objects.filter(pk__in=run_ids).update(created_at=now - timedelta(days=40))
    return event_ids, run_ids


def test_retention_deletes_old_rows_while_the_hub_records(
    project: Project,
    make_service: Any,
    make_topic: Callable[..., str],
    group: str,
    queue_name: str,
    tmp_path: Path,
    procs: list[Any],
    settings: Any,
) -> None:
    settings.K8X_RETENTION_RUNS_DAYS = 30
    settings.K8X_RETENTION_EVENTS_DAYS = 30
    service = make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    old_events, old_runs = _old_rows(project, service.pk)
    topic, dlq = make_topic(2), make_topic()
    log = tmp_path / "hub.log"
    events = [event(subject=f"order-{i}", data={"n": i}) for i in range(NEW_EVENTS)]

    retention_done = threading.Event()

    def stream() -> None:
        for start in range(0, NEW_EVENTS - 100, 100):
            produce_events(topic, events[start : start + 100])
            time.sleep(0.2)
        # The last chunk only once retention is through, so the hub is recording all along.
        retention_done.wait(120)
        produce_events(topic, events[NEW_EVENTS - 100 :])

    procs.append(hub_process(subprocess_env(topic=topic, group=group, queue=queue_name, dlq=dlq), log))
    producer = threading.Thread(target=stream)
    producer.start()
    new = Event.objects.exclude(pk__in=old_events)
    wait_for(lambda: new.exists(), timeout=60, what="the hub's first events", logs=[log])

    recorded_at_start = new.count()
    batches = 0
    deleted: dict[str, int] = {}
    while True:
        # Small passes with a pause between them, as the scheduler makes them, so the
        # deleting spans several of the hub's batches (the stream takes ~4 s, this ~6 s).
        result = retention_apply(now=timezone.now(), batch_size=50, max_batches=2)
        batches += result.batches
        for kind, n in result.deleted.items():
            deleted[kind] = deleted.get(kind, 0) + n
        if result.complete:
            break
        time.sleep(0.05)
    recorded_when_done = new.count()
    retention_done.set()
    producer.join(120)

    # The hub went on recording while retention deleted.
    assert recorded_at_start < recorded_when_done < NEW_EVENTS
    assert deleted == {"runs": OLD_EVENTS, "events": OLD_EVENTS}
    assert batches >= 2 * OLD_EVENTS // 50
    wait_for(lambda: new.count() == NEW_EVENTS, timeout=120, what=f"{NEW_EVENTS} new events", logs=[log])
    wait_for(
        lambda: sum(max(o, 0) for o in committed(group, topic, 2)) == NEW_EVENTS,
        timeout=60,
        what="offsets committed",
        logs=[log],
    )
    assert not Event.objects.filter(pk__in=old_events).exists()
    assert not Run.objects.filter(pk__in=old_runs).exists()
    assert_exactly_one_run_per_event_and_service([e["id"] for e in events], services=1)
    assert procs[0].poll() is None, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
