"""Schedules written by a hostile or careless project: one validator refuses a
cron that never fires, and a broken row that reached the database anyway is
skipped by the scheduler while every other schedule keeps firing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from k8x_core.events.scheduler import schedule_process_one, schedule_validate
from k8x_core.metrics import SCHEDULER_SKIPPED
from k8x_core.models import ScheduleTick, Service
from k8x_core.projects import project_ensure
from tests.kafka_support import topic_count, topic_read

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
NEVER = "0 0 31 2 *"  # February 31st


def make_service(schedule: str, *, name: str, created: datetime = T0) -> Service:
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    service = Service.objects.create(project=project, name=name, image="busybox")
    # Straight into the database, past every validator (as a hostile or old row would be).
    Service.objects.filter(pk=service.pk).update(schedule=schedule, created_at=created)
    service.refresh_from_db()
    return service


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        (NEVER, "never fires"),
        ("0 0 30 2 *", "never fires"),
        ("* * 31 4,6,9,11 *", "never fires"),
        ("every minute please", "is not a valid cron expression"),
        ("* * * * * *", "five fields"),  # a seconds field: not the five-field form
        ("1 " * 200, "longer than"),
        ("   ", "empty"),
    ],
)
def test_schedules_that_never_fire_are_refused_with_the_reason(expression: str, reason: str) -> None:
    start = time.monotonic()
    problem = schedule_validate(expression=expression)
    assert time.monotonic() - start < 0.5
    assert problem is not None and reason in problem


@pytest.mark.parametrize("expression", ["*/5 * * * *", "0 0 29 2 *", "0 0 * * 1", "@daily", "0 12 1 1 *"])
def test_schedules_that_fire_are_accepted(expression: str) -> None:
    assert schedule_validate(expression=expression) is None
    # Leap day around 2100 (2096 -> 2104) is within the search bound.
    assert schedule_validate(expression=expression, now=datetime(2100, 6, 1, tzinfo=UTC)) is None


@pytest.mark.kafka
@pytest.mark.django_db
def test_broken_rows_are_skipped_and_other_schedules_fire(topic: str) -> None:
    make_service(NEVER, name="never")
    make_service("garbage ((", name="garbage")
    good = make_service("*/5 * * * *", name="good")
    before = SCHEDULER_SKIPPED.labels(reason="invalid")._value.get()
    assert schedule_process_one(now=T0 + timedelta(minutes=7)) == 1
    assert SCHEDULER_SKIPPED.labels(reason="invalid")._value.get() - before == 2
    [record] = topic_read(topic, 1)
    assert record.sdk_event().get_extension("k8xservice") == "good"
    assert list(ScheduleTick.objects.values_list("service_id", flat=True)) == [good.pk]
    # The next pass fires again: the broken rows did not stop the loop.
    assert schedule_process_one(now=T0 + timedelta(minutes=12)) == 1


@pytest.mark.kafka
@pytest.mark.django_db(transaction=True)
def test_scheduler_process_stays_alive_with_a_broken_row(topic: str, tmp_path: Path) -> None:
    make_service(NEVER, name="never", created=T0 - timedelta(days=3650))
    good = make_service("* * * * *", name="good", created=datetime(2020, 1, 1, tzinfo=UTC))
    db = connection.settings_dict
    env = dict(os.environ)  # the session's keys (tests.session_env)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        KAFKA_BOOTSTRAP_SERVERS=settings.KAFKA_BOOTSTRAP_SERVERS,
        K8X_EVENTS_TOPIC=topic,
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "scheduler.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "k8x_scheduler", "--interval", "1"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not ScheduleTick.objects.filter(service=good).exclude(event_id="").exists():
            assert proc.poll() is None, f"scheduler died:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no tick emitted:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        time.sleep(3)  # a few more passes over the broken row
        assert proc.poll() is None, f"scheduler died:\n{log.read_text()[-3000:]}"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "never fires" in text
    assert text.count("never fires") >= 3, "the broken row should be skipped on every pass"
    assert topic_count(topic) >= 1
