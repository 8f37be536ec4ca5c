"""POST /api/events, /api/events/simple and /api/webhooks/<slug> against the
real broker: what each endpoint produced is read back and decoded with the
cloudevents SDK; malformed input gets its status and message, and nothing
reaches Kafka."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest
from django.contrib.auth.models import User

from k8x_core.events.apikeys import apikey_create, apikey_revoke
from k8x_core.events.tokens import run_token_issue
from k8x_core.events.webhooks import webhook_create
from k8x_core.models import ApiKey, Membership, Run, RunStatus, Service, TriggerKind
from tests.kafka_support import topic_count, topic_read

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]

BINARY_HEADERS = {
    "HTTP_CE_SPECVERSION": "1.0",
    "HTTP_CE_ID": "evt-1",
    "HTTP_CE_SOURCE": "/shop",
    "HTTP_CE_TYPE": "com.acme.order.created",
    "HTTP_CE_SUBJECT": "order-42",
    "HTTP_CE_TIME": "2024-01-31T12:00:00Z",
}


def structured(**extra):
    event = {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "/shop", "type": "com.acme.x", "data": {"n": 1}}
    event.update(extra)
    return event


def test_binary_mode_read_back(client, topic, project, api_key):
    resp = client.post(
        "/api/events",
        data=json.dumps({"amount": 120}),
        content_type="application/json",
        HTTP_X_API_KEY=api_key,
        **BINARY_HEADERS,
    )
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["id"] == "evt-1"
    assert len(body["correlation_id"]) == 32
    [record] = topic_read(topic, 1)
    assert record.key == b"order-42"  # subject, no partitionkey
    assert record.headers["ce_specversion"] == b"1.0"
    assert record.headers["ce_type"] == b"com.acme.order.created"
    assert record.headers["ce_time"] == b"2024-01-31T12:00:00Z"
    assert record.headers["ce_k8xproject"] == project.slug.encode()
    assert record.headers["ce_correlationid"] == body["correlation_id"].encode()
    assert record.headers["content-type"] == b"application/json"
    assert json.loads(record.value) == {"amount": 120}
    event = record.sdk_event()
    assert (event.get_id(), event.get_source(), event.get_subject()) == ("evt-1", "/shop", "order-42")
    assert event.get_data() == {"amount": 120}
    assert event.get_extension("k8xproject") == project.slug


def test_structured_mode_keeps_correlation_uses_partitionkey_and_strips_spoofed_project(
    client, topic, project, api_key
):
    event = structured(correlationid="flow-7", partitionkey="pk-1", k8xproject="someone-else", k8xservice="x")
    resp = client.post(
        "/api/events", data=json.dumps(event), content_type="application/cloudevents+json", HTTP_X_API_KEY=api_key
    )
    assert resp.status_code == 202, resp.content
    assert resp.json() == {"id": event["id"], "correlation_id": "flow-7"}
    [record] = topic_read(topic, 1)
    assert record.key == b"pk-1"
    sdk = record.sdk_event()
    assert sdk.get_extension("k8xproject") == project.slug
    assert sdk.get_extension("k8xservice") is None
    assert sdk.get_extension("correlationid") == "flow-7"
    assert sdk.get_data() == {"n": 1}


def test_batch_mode_read_back(client, topic, api_key):
    events = [structured(subject=f"s{i}") for i in range(3)]
    resp = client.post(
        "/api/events",
        data=json.dumps(events),
        content_type="application/cloudevents-batch+json",
        HTTP_X_API_KEY=api_key,
    )
    assert resp.status_code == 202, resp.content
    assert [a["id"] for a in resp.json()] == [e["id"] for e in events]
    records = topic_read(topic, 3)
    assert sorted(r.sdk_event().get_id() for r in records) == sorted(e["id"] for e in events)
    assert {r.key for r in records} == {b"s0", b"s1", b"s2"}


def test_simple_form_read_back(client, topic, project, api_key):
    resp = client.post(
        "/api/events/simple",
        data={"event_type": "com.acme.ping", "event_source": "cli", "payload": {"a": [1, 2]}, "subject": "x"},
        content_type="application/json",
        HTTP_X_API_KEY=api_key,
    )
    assert resp.status_code == 202, resp.content
    [record] = topic_read(topic, 1)
    sdk = record.sdk_event()
    assert sdk.get_id() == resp.json()["id"]
    assert sdk.get_specversion() == "1.0"
    assert sdk.get_time() is not None
    assert sdk.get_type() == "com.acme.ping"
    assert sdk.get_data() == {"a": [1, 2]}
    assert record.key == b"x"


def test_webhook_github_read_back(client, topic, project):
    hook, secret = webhook_create(project=project, slug=f"gh-{uuid.uuid4().hex[:6]}", event_type="com.acme.hook")
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    resp = client.post(
        f"/api/webhooks/{hook.slug}",
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature,
        HTTP_X_GITHUB_EVENT="push",
        HTTP_X_GITHUB_DELIVERY="d-123",
    )
    assert resp.status_code == 202, resp.content
    assert resp.json()["id"] == "d-123"
    [record] = topic_read(topic, 1)
    sdk = record.sdk_event()
    assert sdk.get_type() == "com.github.push"
    assert sdk.get_source() == f"k8x/webhooks/{hook.slug}"
    assert sdk.get_extension("k8xproject") == project.slug
    assert sdk.get_data() == {"ref": "refs/heads/main"}


def test_webhook_without_github_header_uses_configured_type(client, topic, project):
    hook, secret = webhook_create(
        project=project, slug=f"h-{uuid.uuid4().hex[:6]}", event_type="com.acme.hook", event_source="acme/crm"
    )
    body = b'{"x": 1}'
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    resp = client.post(
        f"/api/webhooks/{hook.slug}", data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature
    )
    assert resp.status_code == 202, resp.content
    sdk = topic_read(topic, 1)[0].sdk_event()
    assert (sdk.get_type(), sdk.get_source()) == ("com.acme.hook", "acme/crm")


def test_run_token_scopes_to_run_project_and_carries_correlation(client, topic, project):
    service = Service.objects.create(project=project, name="runner", image="busybox")
    run = Run.objects.create(
        service=service, trigger_kind=TriggerKind.MANUAL, correlation_id="flow-run", status=RunStatus.RUNNING
    )
    token = run_token_issue(run_id=run.id, project_slug=project.slug, correlation_id="flow-run", ttl_seconds=60)
    resp = client.post(
        "/api/events/simple",
        data={"event_type": "com.acme.next", "event_source": "run", "payload": None},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert resp.status_code == 202, resp.content
    assert resp.json()["correlation_id"] == "flow-run"
    sdk = topic_read(topic, 1)[0].sdk_event()
    assert sdk.get_extension("k8xproject") == project.slug
    assert sdk.get_extension("correlationid") == "flow-run"


def test_api_key_records_last_used(client, topic, project):
    key, raw = apikey_create(project=project, name="lu")
    assert key.last_used_at is None
    resp = client.post(
        "/api/events", data=json.dumps(structured()), content_type="application/cloudevents+json", HTTP_X_API_KEY=raw
    )
    assert resp.status_code == 202
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None


def test_session_user_needs_csrf_and_membership(topic, project, other_project):
    from django.test import Client

    user = User.objects.create_user("alice", password="pw-alice-123")
    Membership.objects.create(project=project, user=user, role="user")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    payload = json.dumps(structured())
    resp = client.post(f"/api/events?project={project.slug}", data=payload, content_type="application/cloudevents+json")
    assert resp.status_code == 403
    assert "CSRF" in resp.json()["error"]
    token = "a" * 32
    client.cookies["csrftoken"] = token
    resp = client.post(
        f"/api/events?project={other_project.slug}",
        data=payload,
        content_type="application/cloudevents+json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert resp.status_code == 403
    assert other_project.slug in resp.json()["error"]
    resp = client.post(
        f"/api/events?project={project.slug}",
        data=payload,
        content_type="application/cloudevents+json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert resp.status_code == 202, resp.content
    assert topic_read(topic, 1)[0].sdk_event().get_extension("k8xproject") == project.slug


def test_rate_limit_per_key(client, topic, api_key, settings):
    settings.K8X_RATE_LIMIT_PER_MINUTE = 2
    codes = []
    for _ in range(3):
        resp = client.post(
            "/api/events",
            data=json.dumps(structured()),
            content_type="application/cloudevents+json",
            HTTP_X_API_KEY=api_key,
        )
        codes.append(resp.status_code)
    assert codes == [202, 202, 429]
    assert int(resp["Retry-After"]) >= 1
    assert "rate limit" in resp.json()["error"]
    assert topic_count(topic) == 2


def _sig(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("missing_id", 400, "'id'"),
        ("missing_source_binary", 400, "'source'"),
        ("bad_json", 400, "not valid JSON"),
        ("bad_json_binary_data", 400, "not valid JSON"),
        ("wrong_specversion", 400, "specversion"),
        ("bad_time", 400, "RFC 3339"),
        ("bad_extension_name", 400, "extension attribute name"),
        ("batch_bad_item", 400, "event [1]"),
        ("batch_too_long", 400, "at most"),
        ("wrong_content_type", 415, "content type"),
        ("plain_json_no_ce_headers", 415, "not a CloudEvent"),
        ("too_large", 413, "over the limit"),
        ("no_credentials", 401, "authentication required"),
        ("unknown_key", 401, "unknown API key"),
        ("revoked_key", 401, "API key revoked"),
        ("bad_run_token", 401, "run token"),
        ("simple_missing_type", 400, "'event_type'"),
        ("simple_unknown_field", 400, "unknown field"),
        ("simple_wrong_content_type", 415, "application/json"),
        ("webhook_bad_signature", 401, "does not match"),
        ("webhook_missing_signature", 401, "missing X-Hub-Signature-256"),
        ("webhook_unknown", 404, "unknown webhook"),
        ("webhook_bad_json", 400, "not valid JSON"),
    ],
)
def test_malformed_input_is_refused_and_nothing_reaches_kafka(client, topic, project, settings, case, status, words):
    settings.K8X_MAX_EVENT_BYTES = 2000
    settings.K8X_MAX_BATCH_EVENTS = 3
    key_obj, key = apikey_create(project=project, name="k")
    hook, secret = webhook_create(project=project, slug=f"w-{uuid.uuid4().hex[:6]}", event_type="t")
    ce = "application/cloudevents+json"
    auth = {"HTTP_X_API_KEY": key}
    ev = structured()
    if case == "missing_id":
        del ev["id"]
        resp = client.post("/api/events", data=json.dumps(ev), content_type=ce, **auth)
    elif case == "missing_source_binary":
        headers = {k: v for k, v in BINARY_HEADERS.items() if k != "HTTP_CE_SOURCE"}
        resp = client.post("/api/events", data="{}", content_type="application/json", **headers, **auth)
    elif case == "bad_json":
        resp = client.post("/api/events", data="{not json", content_type=ce, **auth)
    elif case == "bad_json_binary_data":
        resp = client.post("/api/events", data="{not json", content_type="application/json", **BINARY_HEADERS, **auth)
    elif case == "wrong_specversion":
        resp = client.post("/api/events", data=json.dumps({**ev, "specversion": "0.3"}), content_type=ce, **auth)
    elif case == "bad_time":
        resp = client.post("/api/events", data=json.dumps({**ev, "time": "yesterday"}), content_type=ce, **auth)
    elif case == "bad_extension_name":
        resp = client.post("/api/events", data=json.dumps({**ev, "My-Ext": "x"}), content_type=ce, **auth)
    elif case == "batch_bad_item":
        batch = [structured(), {**structured(), "type": ""}]
        resp = client.post(
            "/api/events", data=json.dumps(batch), content_type="application/cloudevents-batch+json", **auth
        )
    elif case == "batch_too_long":
        batch = [structured() for _ in range(4)]
        resp = client.post(
            "/api/events", data=json.dumps(batch), content_type="application/cloudevents-batch+json", **auth
        )
    elif case == "wrong_content_type":
        resp = client.post("/api/events", data="a,b", content_type="text/csv", **auth)
    elif case == "plain_json_no_ce_headers":
        resp = client.post("/api/events", data=json.dumps(ev), content_type="application/json", **auth)
    elif case == "too_large":
        resp = client.post("/api/events", data=json.dumps({**ev, "data": "x" * 3000}), content_type=ce, **auth)
    elif case == "no_credentials":
        resp = client.post("/api/events", data=json.dumps(ev), content_type=ce)
    elif case == "unknown_key":
        resp = client.post("/api/events", data=json.dumps(ev), content_type=ce, HTTP_X_API_KEY="k8x_dead_beef")
    elif case == "revoked_key":
        apikey_revoke(key=key_obj)
        resp = client.post("/api/events", data=json.dumps(ev), content_type=ce, **auth)
    elif case == "bad_run_token":
        resp = client.post("/api/events", data=json.dumps(ev), content_type=ce, HTTP_AUTHORIZATION="Bearer k8xrun.x")
    elif case == "simple_missing_type":
        resp = client.post("/api/events/simple", data={"event_source": "s"}, content_type="application/json", **auth)
    elif case == "simple_unknown_field":
        resp = client.post(
            "/api/events/simple",
            data={"event_type": "t", "event_source": "s", "eventType": "x"},
            content_type="application/json",
            **auth,
        )
    elif case == "simple_wrong_content_type":
        resp = client.post("/api/events/simple", data="a=b", content_type="text/plain", **auth)
    elif case.startswith("webhook"):
        body = b'{"a": 1}'
        slug = hook.slug
        headers = {"HTTP_X_HUB_SIGNATURE_256": _sig(secret, body)}
        if case == "webhook_bad_signature":
            headers = {"HTTP_X_HUB_SIGNATURE_256": _sig("wrong", body)}
        elif case == "webhook_missing_signature":
            headers = {}
        elif case == "webhook_unknown":
            slug = "no-such-hook"
        elif case == "webhook_bad_json":
            body = b"{nope"
            headers = {"HTTP_X_HUB_SIGNATURE_256": _sig(secret, body)}
        resp = client.post(f"/api/webhooks/{slug}", data=body, content_type="application/json", **headers)
    else:  # pragma: no cover
        raise AssertionError(case)
    assert resp.status_code == status, resp.content
    error = resp.json()
    assert words in error["error"], error
    assert topic_count(topic) == 0
