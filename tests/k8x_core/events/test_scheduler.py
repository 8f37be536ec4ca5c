"""The cron scheduler against the real database and Kafka."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from k8x_core.events.scheduler import schedule_process_one, schedule_validate
from k8x_core.models import ScheduleTick, Service
from k8x_core.projects import project_ensure
from tests.kafka_support import topic_count, topic_read

pytestmark = [pytest.mark.kafka]

T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


def make_service(schedule="*/5 * * * *", created=T0):
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    service = Service.objects.create(project=project, name="nightly", image="busybox", schedule=schedule)
    Service.objects.filter(pk=service.pk).update(created_at=created)
    service.refresh_from_db()
    return service


@pytest.mark.django_db
def test_emits_once_per_due_time_with_the_agreed_event(topic):
    service = make_service()
    now = T0 + timedelta(minutes=7)
    assert schedule_process_one(now=now) == 1
    assert schedule_process_one(now=now + timedelta(minutes=1)) == 0  # 10:05 already claimed
    [record] = topic_read(topic, 1)
    event = record.sdk_event()
    assert event.get_type() == "k8x.schedule"
    assert event.get_source() == "k8x/scheduler"
    assert event.get_subject() == "nightly"
    assert event.get_id() == f"{service.project.slug}/nightly@2030-01-01T10:05:00Z"
    assert event.get_extension("k8xproject") == service.project.slug
    assert event.get_extension("k8xservice") == "nightly"
    assert event.get_extension("correlationid")
    assert event.get_data() == {
        "service": "nightly",
        "project": service.project.slug,
        "scheduled_time": "2030-01-01T10:05:00Z",
    }
    assert ScheduleTick.objects.get(service=service).event_id == event.get_id()
    assert schedule_process_one(now=T0 + timedelta(minutes=10)) == 1  # the next due time


@pytest.mark.django_db
def test_missed_ticks_after_downtime_run_once(topic):
    make_service(created=T0)
    # Down from 10:00 to 12:07: 25 due times were missed.
    assert schedule_process_one(now=T0 + timedelta(hours=2, minutes=7)) == 1
    [record] = topic_read(topic, 1)
    assert record.sdk_event().get_data()["scheduled_time"] == "2030-01-01T12:05:00Z"
    assert topic_count(topic) == 1


@pytest.mark.django_db
def test_due_times_before_the_service_existed_are_not_emitted(topic):
    make_service(schedule="0 0 * * *", created=T0)  # daily at midnight; created at 10:00
    assert schedule_process_one(now=T0 + timedelta(hours=3)) == 0
    assert schedule_process_one(now=T0 + timedelta(hours=14)) == 1


@pytest.mark.django_db
def test_invalid_and_inactive_schedules_are_skipped(topic):
    make_service(schedule="every minute please")
    inactive = make_service(schedule="* * * * *")
    Service.objects.filter(pk=inactive.pk).update(active=False)
    assert schedule_process_one(now=T0 + timedelta(minutes=3)) == 0
    assert schedule_validate(expression="every minute please")
    assert schedule_validate(expression="*/5 * * * *") is None


@pytest.mark.django_db(transaction=True)
def test_several_schedulers_emit_once(topic):
    make_service(schedule="* * * * *")
    now = T0 + timedelta(minutes=1)
    barrier = threading.Barrier(4)
    results = []

    def scheduler():
        try:
            barrier.wait()
            results.append(schedule_process_one(now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 0, 1]
    assert topic_count(topic) == 1


@pytest.mark.django_db
def test_tick_not_acknowledged_is_retried_later(topic, settings):
    service = make_service()
    now = T0 + timedelta(minutes=5)
    # Nothing listens on port 1: Kafka "down" for this pass.
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    settings.K8X_PRODUCE_TIMEOUT_SECONDS = 1.0
    assert schedule_process_one(now=now) == 0
    assert ScheduleTick.objects.get(service=service).event_id == ""
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
    settings.K8X_PRODUCE_TIMEOUT_SECONDS = 5.0
    assert schedule_process_one(now=now + timedelta(seconds=10)) == 0  # claimed just now: not stale yet
    # As if the failed attempt was a minute ago.
    ScheduleTick.objects.filter(service=service).update(created_at=timezone.now() - timedelta(seconds=60))
    assert schedule_process_one(now=now + timedelta(seconds=70)) == 1
    assert schedule_process_one(now=now + timedelta(seconds=80)) == 0
    [record] = topic_read(topic, 1)
    assert record.sdk_event().get_data()["scheduled_time"] == "2030-01-01T10:05:00Z"
