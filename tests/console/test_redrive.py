"""Bulk re-drive of a service's failed runs from the console: one retry per failed run in the range, never two."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from k8x_core.models import Event, Run, RunStatus, TriggerKind
from k8x_core.runs.redrive import runs_redrive
from tests.console.conftest import World, client_for

pytestmark = pytest.mark.django_db


def _run(world: World, status: str, *, at: datetime, **extra: Any) -> Run:
    run = Run.objects.create(
        service=world.service, trigger_kind=TriggerKind.MANUAL, status=status, params={"n": 1}, **extra
    )
    Run.objects.filter(pk=run.pk).update(created_at=at)
    return run


def test_bulk_redrive_creates_exactly_one_retry_per_failed_run_in_range(world: World, queue_name: str) -> None:
    now = timezone.now().replace(microsecond=0)
    since, until = now - timedelta(hours=6), now - timedelta(hours=1)
    in_range = [
        _run(world, RunStatus.FAILED, at=now - timedelta(hours=5)),
        _run(world, RunStatus.FAILED, at=now - timedelta(hours=2)),
        _run(world, RunStatus.TIMED_OUT, at=now - timedelta(hours=3)),
    ]
    event = Event.objects.create(ce_id="e-failed", source="/shop", type="com.acme.order", outcome="matched")
    event_run = Run.objects.create(service=world.service, event=event, trigger_kind=TriggerKind.EVENT, status="failed")
    Run.objects.filter(pk=event_run.pk).update(created_at=now - timedelta(hours=4))
    in_range.append(event_run)
    retried_before = _run(world, RunStatus.FAILED, at=now - timedelta(hours=4))
    _run(world, RunStatus.QUEUED, at=now - timedelta(hours=4), retry_of=retried_before)
    outside = [
        _run(world, RunStatus.FAILED, at=now - timedelta(hours=7)),
        _run(world, RunStatus.FAILED, at=now - timedelta(minutes=30)),
        _run(world, RunStatus.SUCCEEDED, at=now - timedelta(hours=2)),
    ]
    url = reverse("console:service_redrive", args=["acme", "billing"])
    form = {"since": since.strftime("%Y-%m-%d %H:%M:%S"), "until": until.strftime("%Y-%m-%d %H:%M:%S")}
    # Another project's runs are out of reach (and the admin role is not enough).
    assert client_for(world.admin).get(url).status_code == 403
    assert client_for(world.outsider).post(url, form).status_code == 404

    owner = client_for(world.owner)
    assert owner.get(url).status_code == 200
    first = owner.post(url, form)
    assert first.status_code == 302
    second = owner.post(url, form)
    assert second.status_code == 302

    retries = Run.objects.filter(trigger_kind=TriggerKind.RETRY, requested_by=world.owner)
    assert sorted(str(r.retry_of_id) for r in retries) == sorted(str(r.pk) for r in in_range)
    for original in in_range:
        original.refresh_from_db()
        assert original.redriven_at is not None
        (retry,) = original.retries.all()
        assert (retry.status, retry.params, retry.event_id) == (RunStatus.QUEUED, original.params, original.event_id)
    assert not Run.objects.filter(retry_of__in=outside).exists()
    assert retried_before.retries.count() == 1  # the retry it already had, no second one
    messages = [str(m) for m in first.wsgi_request._messages]  # type: ignore[attr-defined]
    assert messages == ["4 failed run(s) re-driven."]


def test_a_range_that_ends_before_it_starts_is_refused(world: World) -> None:
    now = timezone.now()
    with pytest.raises(ValueError, match="end of the range"):
        runs_redrive(service=world.service, since=now, until=now - timedelta(hours=1), user=None)
    response = client_for(world.owner).post(
        reverse("console:service_redrive", args=["acme", "billing"]),
        {"since": "2026-11-27 10:00", "until": "2026-11-27 09:00"},
    )
    assert response.status_code == 200
    assert "must be after the start" in response.content.decode()
