"""Duplicates are per project: a hostile project that sends another project's
(source, id) first does not make the victim's event a duplicate, and sources
under ``k8x/`` (the scheduler's) cannot be sent by clients. Through the HTTP
API, the real broker and the hub."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from k8x_core.events.apikeys import apikey_create
from k8x_core.events.webhooks import webhook_create
from k8x_core.models import Event, EventOutcome, Project, Run
from k8x_core.projects import project_ensure

from .conftest import event, produce_events
from .test_kafka import make_hub, run_until

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]

TYPE = "com.acme.order.created"


def post(client: Client, key: str, ce_id: str, source: str = "/shop") -> Any:
    return client.post(
        "/api/events",
        data=json.dumps({"specversion": "1.0", "id": ce_id, "source": source, "type": TYPE, "data": {"n": 1}}),
        content_type="application/cloudevents+json",
        HTTP_X_API_KEY=key,
    )


def test_same_source_and_id_in_two_projects_runs_both(
    make_service: Callable[..., Any], make_topic: Callable[..., str], group: str, queue_name: str, topic: str
) -> None:
    hostile = project_ensure(slug=f"hostile-{uuid.uuid4().hex[:6]}")[0]
    victim = project_ensure(slug=f"victim-{uuid.uuid4().hex[:6]}")[0]
    hostile_svc = make_service("h-orders", proj=hostile, triggers=[{"event_type": TYPE}])
    victim_svc = make_service("v-orders", proj=victim, triggers=[{"event_type": TYPE}])
    hostile_key = apikey_create(project=hostile, name="k")[1]
    victim_key = apikey_create(project=victim, name="k")[1]
    client = Client()
    ce_id = f"order-{uuid.uuid4().hex}"
    assert post(client, hostile_key, ce_id).status_code == 202  # the hostile project goes first
    assert post(client, victim_key, ce_id).status_code == 202
    assert post(client, victim_key, ce_id).status_code == 202  # a real redelivery of the victim's
    hub = make_hub(topic, group, make_topic())
    try:
        run_until(hub, lambda: Event.objects.filter(ce_id=ce_id).count() == 3)
    finally:
        hub.close()
    by_project = {
        (e.project_id, e.outcome): e for e in Event.objects.filter(ce_id=ce_id).order_by("kafka_offset", "id")
    }
    assert set(by_project) == {
        (hostile.pk, EventOutcome.MATCHED),
        (victim.pk, EventOutcome.MATCHED),
        (victim.pk, EventOutcome.DUPLICATE),
    }
    assert by_project[(victim.pk, EventOutcome.DUPLICATE)].duplicate_of_id == by_project[(victim.pk, "matched")].pk
    runs = set(Run.objects.values_list("service_id", "event__project_id"))
    assert runs == {(hostile_svc.pk, hostile.pk), (victim_svc.pk, victim.pk)}


def test_clients_cannot_send_k8x_sources(project: Project, topic: str) -> None:
    key = apikey_create(project=project, name="k")[1]
    client = Client()
    # Pre-empting another project's cron tick: the scheduler's source and id.
    resp = post(client, key, f"victim/nightly@{uuid.uuid4().hex}", source="k8x/scheduler")
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert body["field"] == "source"
    assert "reserved" in body["error"] and "k8x/scheduler" in body["error"]
    simple = client.post(
        "/api/events/simple",
        data=json.dumps({"event_type": TYPE, "event_source": "K8X/webhooks/x", "payload": {}}),
        content_type="application/json",
        HTTP_X_API_KEY=key,
    )
    assert simple.status_code == 400 and "reserved" in simple.content.decode()
    with pytest.raises(Exception, match="reserved"):
        webhook_create(project=project, slug=f"h-{uuid.uuid4().hex[:8]}", event_type=TYPE, event_source="k8x/x")


def test_hub_takes_k8x_sources_only_with_a_project_and_null_projects_share_a_key(
    project: Project, make_service: Callable[..., Any], make_topic: Callable[..., str], group: str, queue_name: str
) -> None:
    # Matched, so that the redelivery counts: duplicates are kept for matched events only.
    make_service("erp-orders", triggers=[{"event_type": TYPE, "source_glob": "/erp"}])
    topic, dlq = make_topic(), make_topic()
    forged = event(source="k8x/scheduler", id=f"{project.slug}/nightly@x")
    third_party = event(source="/erp", id=f"erp-{uuid.uuid4().hex}")
    produce_events(topic, [forged, third_party, dict(third_party)])
    hub = make_hub(topic, group, dlq)
    try:
        run_until(hub, lambda: Event.objects.count() == 3)
    finally:
        hub.close()
    rejected = Event.objects.get(outcome=EventOutcome.REJECTED)
    assert rejected.source == "k8x/scheduler"
    assert "reserved" in rejected.reason and "k8xproject" in rejected.reason
    # No project on either: NULL projects are one key, the second is a duplicate.
    outcomes = sorted(Event.objects.filter(source="/erp").values_list("outcome", flat=True))
    assert outcomes == [EventOutcome.DUPLICATE, EventOutcome.MATCHED]
    assert Run.objects.count() == 1
