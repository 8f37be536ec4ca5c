"""The bridge's API-key cache: a recently accepted key needs no database
lookup, and a revoked key stops working within K8X_APIKEY_CACHE_SECONDS."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from k8x_core.events.apikeys import apikey_cache_clear, apikey_create, apikey_revoke
from tests.kafka_support import topic_count

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]


def _post(client, raw):
    event = {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "/cache", "type": "com.acme.cache", "data": {}}
    return client.post(
        "/api/events", data=json.dumps(event), content_type="application/cloudevents+json", HTTP_X_API_KEY=raw
    )


def test_cached_key_skips_the_database(client, topic, project, settings, django_assert_num_queries):
    settings.K8X_APIKEY_CACHE_SECONDS = 30
    apikey_cache_clear()
    raw = apikey_create(project=project, name="cached")[1]
    assert _post(client, raw).status_code == 202
    with django_assert_num_queries(0):
        assert _post(client, raw).status_code == 202
    assert topic_count(topic) == 2


def test_revoked_key_is_refused_once_the_cache_expires(client, topic, project, settings):
    settings.K8X_APIKEY_CACHE_SECONDS = 0.5
    apikey_cache_clear()
    key, raw = apikey_create(project=project, name="revoked")
    assert _post(client, raw).status_code == 202
    apikey_revoke(key=key)
    time.sleep(0.6)
    resp = _post(client, raw)
    assert resp.status_code == 401
    assert resp.json()["error"] == "API key revoked"
    assert topic_count(topic) == 1


def test_cache_disabled_looks_up_every_time(client, topic, project, settings):
    settings.K8X_APIKEY_CACHE_SECONDS = 0
    apikey_cache_clear()
    key, raw = apikey_create(project=project, name="uncached")
    assert _post(client, raw).status_code == 202
    apikey_revoke(key=key)
    assert _post(client, raw).status_code == 401
    assert topic_count(topic) == 1
