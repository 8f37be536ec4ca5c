"""The webhook page's curl example works as shown, against a live server,
and the page text does not contain the secret."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from k8x_core.events.webhooks import webhook_create, webhook_curl_example
from k8x_core.projects import project_ensure
from tests.kafka_support import topic_create, topic_delete, topic_read

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def topic(settings):
    name = f"test.events.{uuid.uuid4().hex}"
    topic_create(name)
    settings.K8X_EVENTS_TOPIC = name
    yield name
    topic_delete(name)


def test_curl_example_works_and_keeps_the_secret(live_server, topic):
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    hook, secret = webhook_create(project=project, slug=f"crm-{uuid.uuid4().hex[:6]}", event_type="com.acme.crm")
    example = webhook_curl_example(webhook=hook, base_url=live_server.url)
    assert f"{live_server.url}/api/webhooks/{hook.slug}" in example
    assert secret not in example
    # The ready-to-run command (first paragraph), exactly as shown.
    first = example.split("\n\n")[0]
    out = subprocess.run(["bash", "-c", first], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout)["id"]
    # The "any other body" recipe, with the secret in the environment.
    second = example.split("\n\n")[1]
    out = subprocess.run(
        ["bash", "-c", second],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"WEBHOOK_SECRET": secret, "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(out.stdout)["correlation_id"]
    records = topic_read(topic, 2)
    assert sorted(json.dumps(r.sdk_event().get_data(), sort_keys=True) for r in records) == sorted(
        [json.dumps({"hello": "world"}), json.dumps({"your": "json"})]
    )


def test_form_encoded_github_delivery(live_server, topic):
    import hashlib
    import hmac
    import urllib.parse

    import requests

    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    hook, secret = webhook_create(project=project, slug=f"gh-{uuid.uuid4().hex[:6]}", event_type="x")
    body = urllib.parse.urlencode({"payload": json.dumps({"action": "opened"})}).encode()
    resp = requests.post(
        f"{live_server.url}/api/webhooks/{hook.slug}",
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-GitHub-Event": "pull_request",
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        },
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    event = topic_read(topic, 1)[0].sdk_event()
    assert event.get_type() == "com.github.pull_request"
    assert event.get_data() == {"action": "opened"}
