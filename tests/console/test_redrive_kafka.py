"""A rejected event through the whole loop: a message the hub rejects shows on its project's
Events page with the reason; the owner edits it and re-drives it through ingestion, Kafka and
the hub (``manage.py k8x_hub``), and it runs."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from django.utils.html import escape

from k8x_core.models import Event, EventOutcome, Run, Trigger, TriggerKind
from tests.console.conftest import World, client_for
from tests.k8x_core.hub.conftest import hub_process, produce, subprocess_env
from tests.k8x_core.hub.test_processes import wait_for
from tests.kafka_support import topic_create, topic_delete

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hub(topic: str, queue_name: str, tmp_path: Path, settings: Any) -> Iterator[Path]:
    settings.K8X_RATE_LIMIT_PER_MINUTE = 0
    dlq = f"test.dlq.{uuid.uuid4().hex}"
    topic_create(dlq)
    log = tmp_path / "hub.log"
    env = subprocess_env(topic=topic, group=f"k8x-test-redrive-{uuid.uuid4().hex[:8]}", queue=queue_name, dlq=dlq)
    proc: subprocess.Popen[bytes] = hub_process(env, log)
    try:
        yield log
    finally:
        proc.kill()
        proc.wait(10)
        topic_delete(dlq)


def test_a_rejected_event_is_shown_to_its_project_edited_redriven_and_runs(world: World, topic: str, hub: Path) -> None:
    Trigger.objects.create(service=world.service, event_type="com.acme.order.fixed")
    # As the bridge would put it on Kafka for an acme API key, but with a time nobody can parse.
    produce(
        topic,
        [
            (
                None,
                [
                    ("ce_specversion", b"1.0"),
                    ("ce_id", b"bad-1"),
                    ("ce_source", b"/shop"),
                    ("ce_type", b"com.acme.order.fixed"),
                    ("ce_time", b"yesterday"),
                    ("ce_k8xproject", b"acme"),
                    ("content-type", b"application/json"),
                ],
                b'{"amount": 150}',
            )
        ],
    )
    rejected = Event.objects.filter(outcome=EventOutcome.REJECTED, ce_id="bad-1")
    wait_for(rejected.exists, timeout=60, what="the hub to reject the message", logs=[hub])
    dead = rejected.get()
    assert dead.project == world.acme and "time" in dead.reason

    owner = client_for(world.owner)
    listing = owner.get(reverse("console:event_list"), {"project": "acme", "outcome": "rejected"}).content.decode()
    assert reverse("console:event_detail", args=[dead.pk]) in listing
    assert escape(dead.reason[:40]) in listing
    detail = owner.get(reverse("console:event_detail", args=[dead.pk])).content.decode()
    assert reverse("console:event_redrive", args=[dead.pk]) in detail
    assert client_for(world.outsider).get(reverse("console:event_detail", args=[dead.pk])).status_code == 404
    assert client_for(world.admin).get(reverse("console:event_redrive", args=[dead.pk])).status_code == 403

    form = owner.get(reverse("console:event_redrive", args=[dead.pk]))
    draft = json.loads(form.context["form"].initial["event"])
    assert draft == {
        "specversion": "1.0",
        "id": "bad-1",
        "source": "/shop",
        "type": "com.acme.order.fixed",
        "time": "yesterday",
        "datacontenttype": "application/json",
        "data": {"amount": 150},
    }
    # A still-broken edit is refused at the field, and nothing is sent.
    still_bad = owner.post(reverse("console:event_redrive", args=[dead.pk]), {"event": json.dumps(draft)})
    assert still_bad.status_code == 200 and "time" in str(still_bad.context["form"].errors)
    del draft["time"]
    response = owner.post(reverse("console:event_redrive", args=[dead.pk]), {"event": json.dumps(draft)})
    assert response.status_code == 302, response.context["form"].errors

    redriven = Event.objects.filter(outcome=EventOutcome.MATCHED, type="com.acme.order.fixed")
    wait_for(redriven.exists, timeout=60, what="the re-driven event", logs=[hub])
    event = redriven.get()
    assert event.ce_id != "bad-1"  # a new id unless the owner keeps it
    assert event.project == world.acme and event.payload["data"] == {"amount": 150}
    run = Run.objects.get(event=event)
    assert (run.service, run.trigger_kind) == (world.service, TriggerKind.EVENT)
    assert response["Location"] == reverse("console:correlation_wait", args=[event.correlation_id])
