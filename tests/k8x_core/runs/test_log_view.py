"""GET /api/runs/<id>/log: text/plain, visible to the run's project only."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from k8x_core.events.apikeys import apikey_create
from k8x_core.models import Project, Run, RunStatus, Service, TriggerKind


@pytest.mark.django_db
def test_log_is_served_as_text_to_the_runs_project_only() -> None:
    mine = Project.objects.create(slug=f"m{uuid.uuid4().hex[:6]}")
    other = Project.objects.create(slug=f"o{uuid.uuid4().hex[:6]}")
    service = Service.objects.create(project=mine, name="svc", image="localhost:5000/k8x/busybox:1")
    run = Run.objects.create(
        service=service,
        trigger_kind=TriggerKind.MANUAL,
        status=RunStatus.QUEUED,
        log="2026-11-24T10:00:00.1Z hello\n2026-11-24T10:00:01.2Z world\n",
        log_truncated=True,
    )
    _, my_key = apikey_create(project=mine, name="k")
    _, other_key = apikey_create(project=other, name="k")
    client = Client()

    response = client.get(f"/api/runs/{run.pk}/log", HTTP_X_API_KEY=my_key)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == run.log
    assert response["X-K8X-Log-Truncated"] == "true"
    assert response["X-K8X-Run-Status"] == "queued"

    assert client.get(f"/api/runs/{run.pk}/log", HTTP_X_API_KEY=other_key).status_code == 404
    assert client.get(f"/api/runs/{uuid.uuid4()}/log", HTTP_X_API_KEY=my_key).status_code == 404
    assert client.get(f"/api/runs/{run.pk}/log").status_code == 401
    assert client.post(f"/api/runs/{run.pk}/log", HTTP_X_API_KEY=my_key).status_code == 405
