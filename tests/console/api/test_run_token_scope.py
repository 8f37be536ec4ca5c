"""A run token (``K8X_RUN_TOKEN``) is good while its run is live and only for
its own run: once the run has ended it is refused (401), and on the status API
it reads its own run and correlation, nothing else of its project."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from k8x_core.events.tokens import run_token_issue
from k8x_core.models import Event, EventOutcome, Project, Run, RunStatus, Service, TriggerKind

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]


def make_run(project: Project, correlation: str, status: str = RunStatus.RUNNING) -> Run:
    service, _ = Service.objects.get_or_create(project=project, name="runner", defaults={"image": "busybox"})
    return Run.objects.create(
        service=service, trigger_kind=TriggerKind.MANUAL, correlation_id=correlation, status=status
    )


def bearer(run: Run) -> dict[str, Any]:
    token = run_token_issue(run_id=run.id, project_slug=run.service.project.slug, correlation_id=run.correlation_id)
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def send(run: Run, headers: dict[str, Any] | None = None) -> Any:
    return Client().post(
        "/api/events/simple",
        data=json.dumps({"event_type": "com.acme.next", "event_source": "/run", "payload": {}}),
        content_type="application/json",
        **(headers or bearer(run)),
    )


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED])
def test_token_of_an_ended_run_is_refused(project: Project, topic: str, status: str) -> None:
    run = make_run(project, "flow-a")
    assert send(run).status_code == 202
    Run.objects.filter(pk=run.pk).update(status=status)
    resp = send(run)
    assert resp.status_code == 401
    assert resp.json() == {"error": f"run token's run has ended ({status})", "field": "Authorization"}
    assert Client().get(f"/api/runs/{run.id}", **bearer(run)).status_code == 401


def test_token_of_a_deleted_run_is_refused_and_the_check_is_one_query(project: Project, topic: str) -> None:
    run = make_run(project, "flow-b")
    headers = bearer(run)
    with CaptureQueriesContext(connection) as queries:
        assert send(run, headers).status_code == 202
    # Accepting an event with a run token costs exactly one query: the run's
    # status and project by primary key.
    [query] = queries.captured_queries
    assert '"k8x_core_run"."id" =' in query["sql"] and '"status"' in query["sql"], query["sql"]
    run.delete()
    resp = send(run, headers)
    assert resp.status_code == 401 and "no longer exists" in resp.json()["error"]


def test_token_reads_only_its_own_run_and_correlation(project: Project, topic: str) -> None:
    mine = make_run(project, "flow-mine")
    sibling = make_run(project, "flow-sibling")  # same project, another run
    Event.objects.create(
        ce_id="e-mine", source="/s", type="t", outcome=EventOutcome.MATCHED, project=project, correlation_id="flow-mine"
    )
    client = Client()
    headers = bearer(mine)
    own = client.get(f"/api/runs/{mine.id}", **headers)
    assert own.status_code == 200 and own.json()["id"] == str(mine.id)
    assert client.get(f"/api/runs/{sibling.id}", **headers).status_code == 404
    assert client.get(f"/api/runs/{sibling.id}/log", **headers).status_code == 404
    assert client.get(f"/api/runs/{mine.id}/log", **headers).status_code == 200
    flow = client.get("/api/correlations/flow-mine", **headers)
    assert flow.status_code == 200
    assert [r["id"] for r in flow.json()["runs"]] == [str(mine.id)]
    assert [e["id"] for e in flow.json()["events"]] == ["e-mine"]
    other = client.get("/api/correlations/flow-sibling", **headers)
    assert other.status_code == 404 and other.json()["field"] == "correlation_id"
