"""With Kafka stopped the bridge answers 503 within the bound and accepts
nothing; once Kafka is back it works again, without a restart."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.kafka_support import topic_count, topic_read

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]

SERVICES = Path(__file__).resolve().parents[3] / "deploy" / "services"


def _post(client, api_key, event_id):
    event = {"specversion": "1.0", "id": event_id, "source": "/down", "type": "com.acme.down", "data": {}}
    started = time.monotonic()
    resp = client.post(
        "/api/events", data=json.dumps(event), content_type="application/cloudevents+json", HTTP_X_API_KEY=api_key
    )
    return resp, time.monotonic() - started


def test_kafka_down_then_back(client, topic, api_key, settings):
    bound = 3.0
    settings.K8X_PRODUCE_TIMEOUT_SECONDS = bound
    resp, _ = _post(client, api_key, "warm-up")  # the producer exists and is connected
    assert resp.status_code == 202
    try:
        subprocess.run([str(SERVICES / "stop.sh"), "kafka"], check=True, timeout=120)
        resp, elapsed = _post(client, api_key, "while-down")
        assert resp.status_code == 503, resp.content
        assert elapsed <= bound + 0.5, elapsed
        assert int(resp["Retry-After"]) >= 1
        assert "nothing was accepted" in resp.json()["error"]
    finally:
        subprocess.run([str(SERVICES / "start.sh"), "kafka"], check=True, timeout=300)
    # Same process, same producer: it reconnects by itself.
    deadline = time.monotonic() + 60
    accepted: list[str] = []
    while time.monotonic() < deadline and not accepted:
        event_id = f"after-{uuid.uuid4().hex}"
        resp, _ = _post(client, api_key, event_id)
        if resp.status_code == 202:
            accepted.append(event_id)
        else:
            assert resp.status_code == 503, resp.content
    assert accepted, "the bridge did not recover after Kafka came back"
    records = topic_read(topic, 2)
    ids = sorted(r.sdk_event().get_id() for r in records)
    assert ids == sorted(["warm-up", *accepted])
    # The 503'd event was not sent later behind the client's back.
    time.sleep(bound)
    assert topic_count(topic) == 2
