"""Switching a service off in the console: it stops matching within the hub's
reload interval, and the runs it still had queued are never launched."""

from __future__ import annotations

from django.urls import reverse

from k8x_core.hub.matching import trigger_index_load, trigger_index_stamp
from k8x_core.models import Run, RunStatus, Trigger, TriggerKind
from k8x_core.runs.launch import LaunchResult, run_launch
from tests.console.conftest import World, client_for

EVENT = {"specversion": "1.0", "id": "x1", "source": "/shop", "type": "com.acme.order.created"}


def test_deactivated_in_the_console_stops_matching_and_launching(world: World) -> None:
    Trigger.objects.create(service=world.service, event_type="com.acme.order.*")
    queued = Run.objects.create(service=world.service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.QUEUED)
    index = trigger_index_load()
    assert index.match(event=EVENT, project_id=world.acme.pk) == [world.service.pk]

    url = reverse("console:service_toggle", kwargs={"slug": "acme", "name": "billing"})
    response = client_for(world.admin).post(url)
    assert response.status_code == 302

    # The hub reloads when the stamp moves (checked every index_refresh_seconds).
    assert trigger_index_stamp() != index.stamp
    assert trigger_index_load().match(event=EVENT, project_id=world.acme.pk) == []

    # The launcher never starts a run of an inactive service (no cluster call is made).
    assert run_launch(run_id=queued.pk) == LaunchResult.SKIPPED
    queued.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED
    assert queued.reason == "ServiceInactive"
    assert queued.finished_at is not None

    # Switched on again, it matches again.
    client_for(world.admin).post(url)
    assert trigger_index_load().match(event=EVENT, project_id=world.acme.pk) == [world.service.pk]
