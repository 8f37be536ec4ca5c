"""The event bridge's ASGI fast path (console.api.fastpath): same answers and
headers as Django's full chain, only for senders it may take, real Kafka and
Redis."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from django.core.asgi import get_asgi_application

from console.api.fastpath import bridge_asgi
from k8x_core.events.apikeys import apikey_cache_clear, apikey_create
from k8x_core.events.ingest import sender_from_api_key
from tests.kafka_support import topic_count, topic_read

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]

CE = "application/cloudevents+json"


def _event(**extra):
    return {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "/fast", "type": "com.acme.fast", **extra}


def asgi_post(app, path, body: bytes, headers: dict[str, str]):
    """One POST through an ASGI app: (status, headers, body)."""
    all_headers = {"host": "testserver", "content-length": str(len(body)), **headers}
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in all_headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    messages = []

    async def main():
        given = False

        async def receive():
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)

        async def send(message):
            messages.append(message)

        await app(scope, receive, send)

    asyncio.run(main())
    start = next(m for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, content


@pytest.fixture
def cached_key(project, settings):
    settings.K8X_APIKEY_CACHE_SECONDS = 60
    apikey_cache_clear()
    raw = apikey_create(project=project, name="fast")[1]
    sender_from_api_key(raw=raw)  # what the first request through Django does
    return raw


class Recorder:
    """The app behind the fast path, standing in for Django: records what it got."""

    def __init__(self):
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_same_answer_and_headers_as_django(topic, project, cached_key):
    django_app = get_asgi_application()
    fast = bridge_asgi(django_app)
    headers = {"content-type": CE, "x-api-key": cached_key}
    slow_status, slow_headers, slow_body = asgi_post(django_app, "/api/events", json.dumps(_event()).encode(), headers)
    fast_status, fast_headers, fast_body = asgi_post(fast, "/api/events", json.dumps(_event()).encode(), headers)
    assert slow_status == fast_status == 202
    assert fast_headers == slow_headers
    assert "x-frame-options" in fast_headers and "content-length" in fast_headers
    assert set(json.loads(fast_body)) == set(json.loads(slow_body)) == {"id", "correlation_id"}
    records = topic_read(topic, 2)
    assert {r.sdk_event().get_extension("k8xproject") for r in records} == {project.slug}


def test_simple_form_and_refusals_match_django(topic, cached_key):
    django_app = get_asgi_application()
    fast = bridge_asgi(django_app)
    key = {"x-api-key": cached_key}
    cases = [
        ("/api/events/simple", b'{"event_type": "t", "event_source": "s"}', {"content-type": "application/json"}),
        ("/api/events", json.dumps({k: v for k, v in _event().items() if k != "id"}).encode(), {"content-type": CE}),
        ("/api/events", b"{not json", {"content-type": CE}),
        ("/api/events", b"a,b", {"content-type": "text/csv"}),
    ]
    answers = []
    for path, body, headers in cases:
        slow = asgi_post(django_app, path, body, {**headers, **key})
        quick = asgi_post(fast, path, body, {**headers, **key})
        assert quick[0] == slow[0], (path, body, quick, slow)
        assert quick[1] == slow[1]
        if slow[0] != 202:
            assert quick[2] == slow[2]
        answers.append(quick[0])
    assert answers == [202, 400, 400, 415]
    assert topic_count(topic) == 2  # the two simple events, nothing refused


def test_host_not_allowed_is_still_refused(topic, cached_key):
    fast = bridge_asgi(get_asgi_application())
    body = json.dumps(_event()).encode()
    headers = {"content-type": CE, "x-api-key": cached_key}
    assert asgi_post(fast, "/api/events", body, {**headers, "host": "evil.example"})[0] == 400
    assert asgi_post(fast, "/api/events", body, headers)[0] == 202
    assert topic_count(topic) == 1


def test_rate_limit_on_the_fast_path(topic, cached_key, settings):
    settings.K8X_RATE_LIMIT_PER_MINUTE = 1
    fast = bridge_asgi(Recorder())
    headers = {"content-type": CE, "x-api-key": cached_key}
    codes = [asgi_post(fast, "/api/events", json.dumps(_event()).encode(), headers)[0] for _ in range(2)]
    assert codes == [202, 429]
    assert topic_count(topic) == 1


def test_what_it_does_not_take_reaches_django_whole(topic, project, cached_key, settings):
    inner = Recorder()
    fast = bridge_asgi(inner)
    body = json.dumps(_event()).encode()
    unknown = apikey_create(project=project, name="not-cached")[1]
    assert asgi_post(fast, "/api/events", body, {"content-type": CE, "x-api-key": unknown})[0] == 299
    assert asgi_post(fast, "/api/events", body, {"content-type": CE})[0] == 299
    assert asgi_post(fast, "/api/runs", body, {"content-type": CE, "x-api-key": cached_key})[0] == 299
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    assert asgi_post(fast, "/api/events", body, {"content-type": CE, "x-api-key": cached_key})[0] == 299
    assert inner.bodies == [body] * 4
    assert topic_count(topic) == 0
