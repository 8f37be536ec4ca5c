"""GET /api/runs/<id>, /api/correlations/<cid>, /api/openapi.json: real
responses validated against the OpenAPI document; and a bounded schemathesis
run against a live server."""

from __future__ import annotations

import json
import re
import uuid

import jsonschema
import pytest
from openapi_spec_validator import validate as openapi_validate

from console.api.openapi import openapi_document
from k8x_core.events.apikeys import apikey_create
from k8x_core.models import Event, Role, Run, RunStatus, Service
from k8x_core.projects import project_ensure

pytestmark = pytest.mark.django_db

DOC = openapi_document()


def assert_conforms(path: str, method: str, response) -> None:
    """The response's status is documented and its JSON matches the schema."""
    responses = DOC["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, f"{response.status_code} not documented for {method} {path}"
    content = responses[str(response.status_code)].get("content", {})
    if "application/json" in content:
        assert response["Content-Type"].startswith("application/json")
        schema = {**content["application/json"]["schema"], "components": DOC["components"]}
        jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(response.json())


def test_document_is_valid_openapi(client):
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    openapi_validate(doc)
    assert doc["openapi"].startswith("3.")
    assert {"/api/events", "/api/events/simple", "/api/webhooks/{slug}", "/api/runs/{run_id}"} <= set(doc["paths"])
    # Every route of the API is described, the management API's included.
    from django.urls import URLResolver

    from console.api.urls import urlpatterns

    def routes(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from routes(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern)

    described = {re.sub(r"\{[a-z_]+\}", "<>", p) for p in doc["paths"]}
    for route in routes(urlpatterns, "/api/"):
        assert re.sub(r"<[a-z]+:[a-z_]+>", "<>", route) in described, route


@pytest.fixture
def flow(db):
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    other = project_ensure(slug=f"o-{uuid.uuid4().hex[:8]}")[0]
    service = Service.objects.create(project=project, name="svc", image="busybox")
    other_service = Service.objects.create(project=other, name="svc", image="busybox")
    cid = uuid.uuid4().hex
    event = Event.objects.create(
        ce_id="e1", source="/s", type="t", outcome="matched", correlation_id=cid, project=project, payload={}
    )
    run = Run.objects.create(service=service, event=event, trigger_kind="event", correlation_id=cid)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, exit_code=0)
    foreign = Run.objects.create(service=other_service, trigger_kind="manual", correlation_id=cid)
    key = apikey_create(project=project, name="k")[1]
    return {"project": project, "run": run, "foreign": foreign, "cid": cid, "key": key}


def test_run_status(client, flow):
    resp = client.get(f"/api/runs/{flow['run'].id}", HTTP_X_API_KEY=flow["key"])
    assert resp.status_code == 200
    assert_conforms("/api/runs/{run_id}", "get", resp)
    body = resp.json()
    assert body["status"] == "succeeded"
    assert body["exit_code"] == 0
    assert body["trigger"] == "event"
    assert body["event_id"] == "e1"
    assert body["links"]["log"] == f"/api/runs/{flow['run'].id}/log"


def test_run_status_scoping(client, flow):
    resp = client.get(f"/api/runs/{flow['foreign'].id}", HTTP_X_API_KEY=flow["key"])
    assert resp.status_code == 404
    assert_conforms("/api/runs/{run_id}", "get", resp)
    resp = client.get(f"/api/runs/{flow['run'].id}")
    assert resp.status_code == 401
    assert_conforms("/api/runs/{run_id}", "get", resp)


def test_correlation_status(client, flow):
    resp = client.get(f"/api/correlations/{flow['cid']}", HTTP_X_API_KEY=flow["key"])
    assert resp.status_code == 200
    assert_conforms("/api/correlations/{correlation_id}", "get", resp)
    body = resp.json()
    # Only the key's project's runs: the other project's run stays hidden.
    assert [r["id"] for r in body["runs"]] == [str(flow["run"].id)]
    assert body["status"] == "succeeded"
    assert [e["id"] for e in body["events"]] == ["e1"]
    resp = client.get(f"/api/correlations/{uuid.uuid4().hex}", HTTP_X_API_KEY=flow["key"])
    assert resp.json()["status"] == "pending"


@pytest.mark.kafka
def test_event_responses_conform(client, settings):
    settings.K8X_EVENTS_TOPIC = f"test.events.{uuid.uuid4().hex}"
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    key = apikey_create(project=project, name="k")[1]
    event = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
    for content_type, data, status in [
        ("application/cloudevents+json", event, 202),
        ("application/cloudevents-batch+json", [event, {**event, "id": "2"}], 202),
        ("application/cloudevents+json", {**event, "id": ""}, 400),
        ("text/csv", "a,b", 415),
    ]:
        resp = client.post(
            "/api/events",
            data=data if isinstance(data, str) else json.dumps(data),
            content_type=content_type,
            HTTP_X_API_KEY=key,
        )
        assert resp.status_code == status
        assert_conforms("/api/events", "post", resp)
    resp = client.post("/api/events", data=json.dumps(event), content_type="application/cloudevents+json")
    assert resp.status_code == 401
    assert_conforms("/api/events", "post", resp)


@pytest.mark.kafka
@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_schemathesis(live_server, settings, kube_cluster, queue_name):
    """Generated requests for every operation, the management API's with an
    owner's key into a project with a service: no 5xx (Kafka and the cluster
    are up), only documented statuses, bodies and content types that match
    the schemas."""
    import hypothesis
    import schemathesis
    from schemathesis import checks

    from k8x_core import kube

    settings.K8X_EVENTS_TOPIC = f"test.schemathesis.{uuid.uuid4().hex}"
    settings.KUBECONFIG = kube_cluster.kubeconfig
    kube.api_client_reset()
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    Service.objects.create(project=project, name="svc", image="busybox")
    key = apikey_create(project=project, name="st", role=Role.OWNER)[1]
    schema = schemathesis.openapi.from_dict(openapi_document(server_url=live_server.url))
    selected = [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
    ]
    operations = 0
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here, failing the test
        if operation.path.endswith("/log"):
            continue  # served by the launcher's view, tested there
        operations += 1

        @hypothesis.settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case):
            # A generated DELETE may have removed it.
            Service.objects.get_or_create(project=project, name="svc", defaults={"image": "busybox"})
            params = case.path_parameters or {}
            if "slug" in params:
                # Mostly the key's own project and service, so more than the 404 path is exercised.
                params["slug"] = project.slug if len(str(params["slug"])) % 4 else params["slug"]
                if "name" in params and len(str(params["name"])) % 2:
                    params["name"] = "svc"
            response = case.call_and_validate(base_url=live_server.url, headers={"X-API-Key": key}, checks=selected)
            seen.setdefault(case.operation.path, set()).add(response.status_code)

        check()
    assert operations >= 38
    # Generated valid events really went through to Kafka.
    assert 202 in seen["/api/events"], seen
    assert 202 in seen["/api/events/simple"], seen
    # The management API answered more than "not found".
    v1_ok = {path for path, statuses in seen.items() if path.startswith("/api/v1/") and statuses & {200, 201, 204}}
    assert len(v1_ok) >= 10, seen
