"""XML and other text data reach the service as text: through the HTTP bridge
(binary mode) and straight from Kafka (binary mode), the hub stores the text,
and the Job's K8X_PARAMS is that text as a JSON string (never ``{}``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from k8x_core.events.apikeys import apikey_create
from k8x_core.events.ce import ce_from_kafka
from k8x_core.models import Event, Project, Run
from k8x_core.runs import jobspec

from .conftest import produce
from .test_kafka import make_hub, run_until

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]

TYPE = "com.acme.invoice"
XML = '<?xml version="1.0"?>\n<invoice id="7"><total currency="EUR">12.50</total><note>ä &amp; ö</note></invoice>'
CSV = "id;total\n7;12.50\n"


def job_env(run: Run) -> dict[str, Any]:
    build = jobspec.job_build(
        run=run,
        service=run.service,
        project_slug=run.service.project.slug,
        namespace=run.service.project.namespace,
        event=run.event,
        configs={},
        secret_keys=[],
        events_url="http://10.244.0.1:8000/api/events",
        run_token="token",
        ttl_seconds_after_finished=60,
    )
    [container] = build.job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_xml_and_text_events_reach_k8x_params_as_text(
    project: Project,
    make_service: Callable[..., Any],
    make_topic: Callable[..., str],
    group: str,
    queue_name: str,
    topic: str,
) -> None:
    make_service("invoices", triggers=[{"event_type": TYPE}])
    key = apikey_create(project=project, name="k")[1]
    http_id, atom_id, csv_id = (f"{k}-{uuid.uuid4().hex}" for k in ("http", "atom", "csv"))
    resp = Client().post(
        "/api/events",
        data=XML.encode(),
        content_type="application/xml",
        HTTP_X_API_KEY=key,
        HTTP_CE_SPECVERSION="1.0",
        HTTP_CE_ID=http_id,
        HTTP_CE_SOURCE="/erp",
        HTTP_CE_TYPE=TYPE,
    )
    assert resp.status_code == 202, resp.content

    def kafka_binary(ce_id: str, content_type: str, body: bytes) -> tuple[None, list[tuple[str, bytes]], bytes]:
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", ce_id.encode()),
            ("ce_source", b"/erp"),
            ("ce_type", TYPE.encode()),
            ("ce_k8xproject", project.slug.encode()),
            ("content-type", content_type.encode()),
        ]
        return None, headers, body

    produce(
        topic,
        [
            kafka_binary(atom_id, "application/atom+xml", XML.encode()),
            kafka_binary(csv_id, "text/csv; charset=iso-8859-1", "id;näme\n".encode("latin-1")),
        ],
    )
    hub = make_hub(topic, group, make_topic())
    try:
        run_until(hub, lambda: Run.objects.count() == 3)
    finally:
        hub.close()
    expected = {http_id: XML, atom_id: XML, csv_id: "id;näme\n"}
    for run in Run.objects.select_related("event", "service__project"):
        assert run.event is not None
        text = expected[run.event.ce_id]
        assert run.event.payload["data"] == text
        assert "data_base64" not in run.event.payload
        env = job_env(run)
        assert env["K8X_PARAMS"] == json.dumps(text, separators=(",", ":"), ensure_ascii=False)
        assert json.loads(env["K8X_PARAMS"]) == text
        assert json.loads(env["K8X_EVENT"])["data"] == text
    assert Event.objects.get(ce_id=csv_id).datacontenttype == "text/csv; charset=iso-8859-1"


def test_text_that_is_not_in_its_charset_is_a_400_naming_data(project: Project, topic: str) -> None:
    key = apikey_create(project=project, name="k")[1]
    common: dict[str, Any] = {
        "HTTP_X_API_KEY": key,
        "HTTP_CE_SPECVERSION": "1.0",
        "HTTP_CE_SOURCE": "/erp",
        "HTTP_CE_TYPE": TYPE,
    }
    bad = Client().post(
        "/api/events", data=b"<a>\xff\xfe</a>", content_type="application/xml", HTTP_CE_ID="x1", **common
    )
    assert bad.status_code == 400
    assert bad.json()["field"] == "data" and "utf-8" in bad.json()["error"]
    # (CONTENT_TYPE set in the environ: the test client would try to encode with it)
    odd = Client().post(
        "/api/events",
        data=b"hi",
        content_type="text/plain",
        CONTENT_TYPE="text/plain; charset=klingon",
        HTTP_CE_ID="x2",
        **common,
    )
    assert odd.status_code == 400 and "unknown charset 'klingon'" in odd.json()["error"]
    # Straight from Kafka: a text payload decodes to a string.
    event = ce_from_kafka(
        [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"k"),
            ("ce_source", b"/s"),
            ("ce_type", b"t"),
            ("content-type", b"text/xml"),
        ],
        b"<x/>",
    )
    assert event["data"] == "<x/>"
