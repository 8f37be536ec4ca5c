"""The management API, /api/v1/: every endpoint for every kind of caller
(API keys of each role, console sessions of each role, a non-member, another
project's key) against PostgreSQL; answers validated against the OpenAPI document."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from k8x_core.events.apikeys import apikey_create
from k8x_core.models import (
    ApiKey,
    AuditEntry,
    Config,
    Role,
    Run,
    RunLog,
    RunStatus,
    Scope,
    Secret,
    Service,
    Trigger,
    TriggerKind,
)
from k8x_core.runs.configs import config_set, secret_set
from tests.console.api.test_status_openapi import assert_conforms
from tests.console.conftest import World, client_for

pytestmark = pytest.mark.django_db

V1 = "/api/v1/projects/acme"
SVC = f"{V1}/services/billing"


@dataclass
class Who:
    """A caller: a client plus the headers it sends."""

    client: Client
    headers: dict[str, str]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        kwargs: dict[str, Any] = {"headers": self.headers}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return getattr(self.client, method.lower())(path, **kwargs)


def key_caller(world: World, role: Role, *, project: Any = None) -> Who:
    raw = apikey_create(project=project or world.acme, name=f"k-{role}", role=role)[1]
    return Who(Client(), {"X-API-Key": raw})


CALLERS = [
    "key-owner",
    "key-admin",
    "key-user",
    "bearer-owner",
    "session-owner",
    "session-admin",
    "session-user",
    "session-outsider",
    "key-other-project",
]
# The role each caller holds in project acme (None: not visible).
ROLES: dict[str, Role | None] = {
    "key-owner": Role.OWNER,
    "key-admin": Role.ADMIN,
    "key-user": Role.USER,
    "bearer-owner": Role.OWNER,
    "session-owner": Role.OWNER,
    "session-admin": Role.ADMIN,
    "session-user": Role.USER,
    "session-outsider": None,
    "key-other-project": None,
}
RANK = {Role.USER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def make_caller(world: World, name: str) -> Who:
    if name.startswith("key-other"):
        return key_caller(world, Role.OWNER, project=world.other)
    if name.startswith("key-"):
        return key_caller(world, Role(name.split("-")[1]))
    if name == "bearer-owner":
        raw = apikey_create(project=world.acme, name="bearer", role=Role.OWNER)[1]
        return Who(Client(), {"Authorization": f"Bearer {raw}"})
    user = getattr(world, name.split("-")[1])
    return Who(client_for(user), {})


def expected(caller: str, needs: Role, ok: int) -> int:
    role = ROLES[caller]
    if role is None:
        return 404
    return ok if RANK[role] >= RANK[needs] else 403


# (method, path, body, role needed, status when allowed, OpenAPI path)
def endpoints(world: World) -> list[tuple[str, str, Any, Role, int, str]]:
    trig = Trigger.objects.create(service=world.service, event_type="com.acme.order")
    config_set(key="REGION", value="eu", project=world.acme)
    config_set(key="LEVEL", value="1", service=world.service)
    secret_set(key="TOKEN", value="s3cret-value", project=world.acme)
    secret_set(key="SVC_TOKEN", value="s3cret-value-2", service=world.service)
    run = str(world.run.pk)
    t = "/api/v1/projects/{slug}/services/{name}"
    p = "/api/v1/projects/{slug}"
    return [
        ("GET", V1, None, Role.USER, 200, p),
        ("PATCH", V1, {"default_timeout": 600}, Role.OWNER, 200, p),
        ("GET", f"{V1}/services", None, Role.USER, 200, f"{p}/services"),
        # Valid for the form's role check, refused by the form (no image): 400 at "image".
        ("POST", f"{V1}/services", {"name": "new-svc"}, Role.ADMIN, 400, f"{p}/services"),
        ("GET", SVC, None, Role.USER, 200, t),
        ("PATCH", SVC, {"retries": "x"}, Role.ADMIN, 400, t),
        ("GET", f"{SVC}/triggers", None, Role.USER, 200, f"{t}/triggers"),
        ("POST", f"{SVC}/triggers", {"event_type": "com.acme.*"}, Role.ADMIN, 201, f"{t}/triggers"),
        ("GET", f"{SVC}/triggers/{trig.pk}", None, Role.USER, 200, f"{t}/triggers/{{trigger_id}}"),
        ("PATCH", f"{SVC}/triggers/{trig.pk}", {"active": False}, Role.ADMIN, 200, f"{t}/triggers/{{trigger_id}}"),
        ("DELETE", f"{SVC}/triggers/{trig.pk}", None, Role.ADMIN, 204, f"{t}/triggers/{{trigger_id}}"),
        ("POST", f"{SVC}/triggers/test", {"event": {"type": "com.acme.order"}}, Role.ADMIN, 200, f"{t}/triggers/test"),
        ("GET", f"{V1}/configs", None, Role.USER, 200, f"{p}/configs"),
        ("PUT", f"{V1}/configs/REGION", {"value": "us"}, Role.ADMIN, 200, f"{p}/configs/{{key}}"),
        ("DELETE", f"{V1}/configs/REGION", None, Role.ADMIN, 204, f"{p}/configs/{{key}}"),
        ("GET", f"{SVC}/configs", None, Role.USER, 200, f"{t}/configs"),
        ("PUT", f"{SVC}/configs/LEVEL", {"value": "2"}, Role.ADMIN, 200, f"{t}/configs/{{key}}"),
        ("DELETE", f"{SVC}/configs/LEVEL", None, Role.ADMIN, 204, f"{t}/configs/{{key}}"),
        ("GET", f"{V1}/secrets", None, Role.USER, 200, f"{p}/secrets"),
        ("PUT", f"{V1}/secrets/TOKEN", {"value": "new"}, Role.OWNER, 200, f"{p}/secrets/{{key}}"),
        ("DELETE", f"{V1}/secrets/TOKEN", None, Role.OWNER, 204, f"{p}/secrets/{{key}}"),
        ("GET", f"{SVC}/secrets", None, Role.USER, 200, f"{t}/secrets"),
        ("PUT", f"{SVC}/secrets/SVC_TOKEN", {"value": "new"}, Role.OWNER, 200, f"{t}/secrets/{{key}}"),
        ("DELETE", f"{SVC}/secrets/SVC_TOKEN", None, Role.OWNER, 204, f"{t}/secrets/{{key}}"),
        ("GET", f"{SVC}/runs", None, Role.USER, 200, f"{t}/runs"),
        ("POST", f"{SVC}/runs", {"params": {}}, Role.USER, 201, f"{t}/runs"),
        ("GET", f"{V1}/runs", None, Role.USER, 200, f"{p}/runs"),
        ("GET", f"{V1}/runs/{run}", None, Role.USER, 200, f"{p}/runs/{{run_id}}"),
        ("POST", f"{V1}/runs/{run}/rerun", None, Role.USER, 201, f"{p}/runs/{{run_id}}/rerun"),
        ("POST", f"{V1}/runs/{run}/cancel", None, Role.USER, 200, f"{p}/runs/{{run_id}}/cancel"),
        ("GET", f"{V1}/events", None, Role.USER, 200, f"{p}/events"),
        ("DELETE", SVC, None, Role.ADMIN, 204, t),
    ]


@pytest.mark.parametrize("caller", CALLERS)
def test_every_endpoint_for_every_caller(world: World, caller: str, queue_name: str) -> None:
    who = make_caller(world, caller)
    for method, path, body, needs, ok, doc_path in endpoints(world):
        response = who.call(method, path, body)
        want = expected(caller, needs, ok)
        assert response.status_code == want, (caller, method, path, response.content[:300])
        assert_conforms(doc_path, method.lower(), response)
        if want >= 400:
            assert response.json()["error"]
    if ROLES[caller] is None:
        return
    # Another project's resources are never visible, whatever the role.
    for path in [
        "/api/v1/projects/other",
        "/api/v1/projects/other/services/secretive",
        f"{V1}/runs/{world.other_run.pk}",
    ]:
        response = who.call("GET", path)
        assert response.status_code == 404, (caller, path)


def test_project_list_shows_only_the_callers(world: World) -> None:
    response = make_caller(world, "key-user").call("GET", "/api/v1/projects")
    assert response.status_code == 200
    assert_conforms("/api/v1/projects", "get", response)
    assert [(p["slug"], p["role"]) for p in response.json()["items"]] == [("acme", "user")]
    response = make_caller(world, "session-outsider").call("GET", "/api/v1/projects")
    assert [p["slug"] for p in response.json()["items"]] == ["other"]


def test_no_credentials_and_bad_ones(world: World) -> None:
    client = Client()
    response = client.get("/api/v1/projects")
    assert response.status_code == 401
    assert_conforms("/api/v1/projects", "get", response)
    response = client.get("/api/v1/projects", headers={"X-API-Key": "k8x_nope_nope"})
    assert response.status_code == 401
    assert response.json()["field"] == "X-API-Key"
    key, raw = apikey_create(project=world.acme, name="gone", role=Role.OWNER)
    ApiKey.objects.filter(pk=key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    assert client.get("/api/v1/projects", headers={"X-API-Key": raw}).json()["error"] == "API key revoked"


def test_session_needs_csrf_for_unsafe_methods(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.admin)
    assert client.get(f"{V1}/configs").status_code == 200
    response = client.put(f"{V1}/configs/REGION", data=json.dumps({"value": "x"}), content_type="application/json")
    assert response.status_code == 403
    assert response.json()["field"] == "X-CSRFToken"
    assert not Config.objects.filter(key="REGION").exists()


def test_errors_name_the_field(world: World) -> None:
    who = make_caller(world, "key-owner")
    cases = [
        ("POST", f"{V1}/services", {"name": "x", "image": "busybox", "colour": "red"}, "colour"),
        ("POST", f"{V1}/services", {"image": "busybox"}, "name"),
        ("POST", f"{V1}/services", {"name": "Not A Label", "image": "busybox"}, "name"),
        ("POST", f"{V1}/services", {"name": "x", "image": "busybox", "command": 5}, "command"),
        ("POST", f"{V1}/services", {"name": "x", "image": "busybox", "schedule": "every tuesday"}, "schedule"),
        ("POST", f"{V1}/services", {"name": "x", "job_template": "kind: Deployment"}, "job_template"),
        (
            "POST",
            f"{V1}/services",
            {"name": "x", "image": "b", "parameters_schema": {"type": "array"}},
            "parameters_schema",
        ),
        ("POST", f"{V1}/services", {"name": "billing", "image": "busybox"}, "name"),
        ("POST", f"{SVC}/triggers", {"event_type": "a", "cel_expression": "event.data.x >"}, "cel_expression"),
        ("POST", f"{SVC}/triggers", {"source_glob": "/x"}, "event_type"),
        ("POST", f"{SVC}/triggers/test", {"event": "nope"}, "event"),
        ("POST", f"{SVC}/triggers/test", {"event": {}, "trigger": {"event_type": ""}}, "trigger.event_type"),
        ("PUT", f"{V1}/configs/K8X_RUN_ID", {"value": "x"}, "key"),
        ("PUT", f"{V1}/configs/1BAD", {"value": "x"}, "key"),
        ("PUT", f"{V1}/configs/GOOD", {"value": 1}, "value"),
        ("PUT", f"{V1}/secrets/GOOD", {}, "value"),
        ("DELETE", f"{V1}/secrets/MISSING", None, "key"),
        ("GET", f"{V1}/runs?status=sleeping", None, "status"),
        ("GET", f"{V1}/runs?since=yesterday", None, "since"),
        ("GET", f"{V1}/runs?service=nope", None, "service"),
        ("GET", f"{V1}/runs?cursor=garbage", None, "cursor"),
        ("GET", f"{V1}/runs?limit=0", None, "limit"),
        ("GET", f"{V1}/events?outcome=maybe", None, "outcome"),
        ("GET", f"{V1}/services/nope", None, "name"),
    ]
    for method, path, body, field in cases:
        response = who.call(method, path, body)
        assert 400 <= response.status_code < 500, (path, body, response.status_code)
        assert response.json().get("field") == field, (path, body, response.json())
    response = who.client.post(f"{V1}/services", data="name=x", content_type="text/plain", headers=who.headers)
    assert response.status_code == 415
    response = who.client.post(f"{V1}/services", data="[1]", content_type="application/json", headers=who.headers)
    assert response.json()["field"] == "body"
    response = who.call("PUT", f"{V1}/services")
    assert response.status_code == 405 and response["Allow"] == "GET, POST"


def test_secret_values_never_returned(world: World) -> None:
    who = make_caller(world, "key-owner")
    response = who.call("PUT", f"{V1}/secrets/API_TOKEN", {"value": "hunter2-very-secret"})
    assert response.status_code == 200
    assert "hunter2" not in response.content.decode()
    assert Secret.objects.get(key="API_TOKEN").reveal() == "hunter2-very-secret"
    listing = who.call("GET", f"{V1}/secrets")
    assert [s["key"] for s in listing.json()["items"]] == ["API_TOKEN"]
    assert "hunter2" not in listing.content.decode()
    assert "value" not in listing.json()["items"][0]


def test_configs_at_both_scopes(world: World) -> None:
    who = make_caller(world, "key-admin")
    assert who.call("PUT", f"{V1}/configs/REGION", {"value": "eu"}).json()["scope"] == "project"
    body = who.call("PUT", f"{SVC}/configs/REGION", {"value": "us"}).json()
    assert (body["scope"], body["service"]) == ("service", "billing")
    assert {c["scope"] for c in who.call("GET", f"{V1}/configs").json()["items"]} == {"project", "service"}
    assert [c["value"] for c in who.call("GET", f"{SVC}/configs").json()["items"]] == ["us"]
    assert who.call("DELETE", f"{SVC}/configs/REGION").status_code == 204
    assert list(Config.objects.values_list("scope", "value")) == [(Scope.PROJECT, "eu")]


def test_trigger_crud_and_test(world: World) -> None:
    who = make_caller(world, "key-admin")
    created = who.call(
        "POST", f"{SVC}/triggers", {"event_type": "com.acme.order.*", "cel_expression": "event.data.n > 1"}
    )
    assert created.status_code == 201, created.json()
    tid = created.json()["id"]
    sample = {"specversion": "1.0", "id": "1", "source": "/s", "type": "com.acme.order.created", "data": {"n": 5}}
    results = who.call("POST", f"{SVC}/triggers/test", {"event": sample}).json()["results"]
    assert results == [{"trigger": tid, "event_type": "com.acme.order.*", "matched": True, "error": ""}]
    draft = {"event_type": "com.acme.order.*", "cel_expression": "event.data.n > 10"}
    results = who.call("POST", f"{SVC}/triggers/test", {"event": sample, "trigger": draft}).json()["results"]
    assert [r["matched"] for r in results] == [False] and results[0]["trigger"] is None
    patched = who.call("PATCH", f"{SVC}/triggers/{tid}", {"source_glob": "/s*"}).json()
    assert (patched["source_glob"], patched["cel_expression"], patched["active"]) == ("/s*", "event.data.n > 1", True)
    assert who.call("DELETE", f"{SVC}/triggers/{tid}").status_code == 204
    assert not Trigger.objects.filter(pk=tid).exists()
    # A trigger of another service (of another project) is not reachable through this one.
    foreign = Trigger.objects.create(service=world.other_service, event_type="x")
    assert who.call("GET", f"{SVC}/triggers/{foreign.pk}").status_code == 404


def test_manual_run_rerun_cancel(world: World, queue_name: str) -> None:
    Service.objects.filter(pk=world.service.pk).update(
        parameters_schema={
            "type": "object",
            "required": ["amount"],
            "properties": {"amount": {"type": "integer", "minimum": 1}},
        }
    )
    who = make_caller(world, "key-user")
    refused = who.call("POST", f"{SVC}/runs", {"params": {"amount": 0}})
    assert refused.status_code == 400 and refused.json()["field"] == "params"
    assert "amount" in refused.json()["error"]
    assert who.call("POST", f"{SVC}/runs", {"params": {}}).json()["field"] == "params"
    created = who.call("POST", f"{SVC}/runs", {"params": {"amount": 3}})
    assert created.status_code == 201, created.json()
    run = Run.objects.get(pk=created.json()["id"])
    assert (run.trigger_kind, run.status, run.params) == (TriggerKind.MANUAL, RunStatus.QUEUED, {"amount": 3})
    rerun = who.call("POST", f"{V1}/runs/{run.pk}/rerun")
    assert rerun.status_code == 201
    again = Run.objects.get(pk=rerun.json()["id"])
    assert (again.retry_of_id, again.trigger_kind, again.params, again.correlation_id) == (
        run.pk,
        TriggerKind.RETRY,
        {"amount": 3},
        run.correlation_id,
    )
    cancelled = who.call("POST", f"{V1}/runs/{run.pk}/cancel")
    assert cancelled.json()["cancelled"] is True and cancelled.json()["run"]["status"] == "cancelled"
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert who.call("POST", f"{V1}/runs/{run.pk}/cancel").json()["cancelled"] is False
    Service.objects.filter(pk=world.service.pk).update(active=False)
    inactive = who.call("POST", f"{SVC}/runs", {"params": {"amount": 3}})
    assert inactive.status_code == 400 and inactive.json()["field"] == "service"


def test_run_list_filters_and_cursor(world: World) -> None:
    for i in range(7):
        run = Run.objects.create(
            service=world.service,
            trigger_kind=TriggerKind.MANUAL,
            status=RunStatus.SUCCEEDED if i % 2 else RunStatus.FAILED,
        )
        RunLog.objects.create(run=run, text="x" * 10, bytes=10)
    who = make_caller(world, "key-user")
    seen: list[str] = []
    path: str | None = f"{V1}/runs?limit=3"
    while path:
        body = who.call("GET", path).json()
        assert len(body["items"]) <= 3
        seen += [r["id"] for r in body["items"]]
        path = f"{V1}/runs?limit=3&cursor={body['next']}" if body["next"] else None
    assert len(seen) == len(set(seen)) == 8
    assert seen == [str(r) for r in Run.objects.filter(service__project=world.acme).values_list("pk", flat=True)]
    failed = who.call("GET", f"{V1}/runs?status=failed&trigger=manual").json()["items"]
    assert len(failed) == 4 and {r["status"] for r in failed} == {"failed"}
    assert who.call("GET", f"{V1}/runs?trigger=event&service=billing").json()["items"][0]["id"] == str(world.run.pk)
    assert who.call("GET", f"{V1}/runs?since=2999-01-01T00:00:00Z").json()["items"] == []
    assert len(who.call("GET", f"{V1}/runs?until=2999-01-01T00:00:00Z&limit=200").json()["items"]) == 8


def test_event_list(world: World) -> None:
    who = make_caller(world, "key-user")
    body = who.call("GET", f"{V1}/events").json()
    assert [e["id"] for e in body["items"]] == ["e1"] and body["next"] is None
    assert who.call("GET", f"{V1}/events?type=com.other").json()["items"] == []
    assert who.call("GET", f"{V1}/events?outcome=matched&type=com.acme").json()["items"][0]["id"] == "e1"


def test_run_token_refused(world: World) -> None:
    from k8x_core.events.tokens import run_token_issue  # only this test needs a run token

    token = run_token_issue(run_id=world.run.pk, project_slug="acme", correlation_id="flow-acme")
    response = Client().get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json()["field"] == "Authorization"


def test_apikey_role_up_to_the_creators(world: World) -> None:
    from k8x_core.events.apikeys import ApiKeyRoleRefused  # the refusal is this test's subject

    with pytest.raises(ApiKeyRoleRefused):
        apikey_create(project=world.acme, name="x", created_by=world.admin, role=Role.OWNER)
    assert apikey_create(project=world.acme, name="x", created_by=world.admin, role=Role.ADMIN)[0].role == "admin"
    assert apikey_create(project=world.acme, name="y")[0].role == "user"
    client = client_for(world.admin)
    response = client.post("/projects/acme/api-keys/", {"name": "ci", "role": "owner"})
    assert "a key cannot have the owner role" in response.content.decode()
    client.post("/projects/acme/api-keys/", {"name": "ci", "role": "admin"})
    assert ApiKey.objects.get(name="ci").role == Role.ADMIN


def test_run_lists_never_load_logs(world: World) -> None:
    from django.db import connection  # only this test looks at the SQL
    from django.test.utils import CaptureQueriesContext

    who = make_caller(world, "key-user")
    with CaptureQueriesContext(connection) as queries:
        for path in [f"{V1}/runs", f"{SVC}/runs", f"{V1}/runs/{world.run.pk}", f"{V1}/events"]:
            assert who.call("GET", path).status_code == 200
    selects = [q["sql"] for q in queries.captured_queries if "k8x_core_run" in q["sql"]]
    assert selects
    assert not [sql for sql in selects if '"k8x_core_run"."log"' in sql or '"k8x_core_event"."payload"' in sql]


def test_every_change_through_the_api_is_audited_with_the_key(world: World) -> None:
    raw = apikey_create(project=world.acme, name="ci-bot", role=Role.OWNER)[1]
    who = Who(Client(), {"X-API-Key": raw})
    key = ApiKey.objects.get(name="ci-bot")
    tid = who.call("POST", f"{SVC}/triggers", {"event_type": "com.acme.order.*"}).json()["id"]
    assert who.call("PATCH", f"{SVC}/triggers/{tid}", {"active": False}).status_code == 200
    assert who.call("DELETE", f"{SVC}/triggers/{tid}").status_code == 204
    assert who.call("PUT", f"{V1}/configs/REGION", {"value": "eu"}).status_code == 200
    assert who.call("PUT", f"{V1}/configs/REGION", {"value": "us"}).status_code == 200
    assert who.call("DELETE", f"{V1}/configs/REGION").status_code == 204
    assert who.call("PUT", f"{SVC}/secrets/API_TOKEN", {"value": "hunter2-first"}).status_code == 200
    assert who.call("PUT", f"{SVC}/secrets/API_TOKEN", {"value": "hunter2-second"}).status_code == 200
    assert who.call("DELETE", f"{SVC}/secrets/API_TOKEN").status_code == 204
    assert who.call("DELETE", SVC).status_code == 204

    entries = list(AuditEntry.objects.filter(project=world.acme).exclude(kind="api_key").order_by("pk"))
    assert [(e.kind, e.action, e.object_name) for e in entries] == [
        ("trigger", "create", "billing: com.acme.order.*"),
        ("trigger", "update", "billing: com.acme.order.*"),
        ("trigger", "delete", "billing: com.acme.order.*"),
        ("config", "create", "REGION"),
        ("config", "update", "REGION"),
        ("config", "delete", "REGION"),
        ("secret", "create", "billing/API_TOKEN"),
        ("secret", "update", "billing/API_TOKEN"),
        ("secret", "delete", "billing/API_TOKEN"),
        ("service", "delete", "billing"),
    ]
    assert {(e.actor_kind, e.actor_id) for e in entries} == {(AuditEntry.ActorKind.API_KEY, str(key.pk))}
    assert entries[1].changes == {"active": {"old": True, "new": False}}
    assert entries[4].changes == {"value": {"old": "eu", "new": "us"}}
    for entry in entries:
        assert "hunter2" not in json.dumps(entry.changes)


def test_rate_limit_per_key_and_per_user(world: World, settings: Any) -> None:
    settings.K8X_API_RATE_LIMIT_PER_MINUTE = 3
    if time.time() % 60 > 55:  # the limit is a per-minute window: start the calls inside one
        time.sleep(60 - time.time() % 60 + 0.5)
    busy = make_caller(world, "key-user")
    codes = [busy.call("GET", f"{V1}/services").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = busy.call("GET", V1)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json() == {"error": "rate limit of 3 requests per minute exceeded", "field": "rate"}
    # Another key of the same project and a console user have budgets of their own.
    assert make_caller(world, "key-admin").call("GET", V1).status_code == 200
    assert make_caller(world, "session-user").call("GET", V1).status_code == 200
    settings.K8X_API_RATE_LIMIT_PER_MINUTE = 0  # no limit
    assert busy.call("GET", V1).status_code == 200
