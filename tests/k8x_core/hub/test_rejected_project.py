"""A message the hub rejects belongs to the project its sender was scoped to (``k8xproject``
in the event, the ``ce_k8xproject`` header, or a structured value), so the project sees it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from k8x_core.hub.loop import hub_process_batch
from k8x_core.hub.matching import trigger_index_load
from k8x_core.models import Event, EventOutcome, Project

from .conftest import event, message

pytestmark = pytest.mark.django_db(transaction=True)


def _rejected(msg: Any) -> Event:
    result = hub_process_batch(messages=[msg], index=trigger_index_load())
    assert result.counts == {"rejected": 1}
    return Event.objects.get(outcome=EventOutcome.REJECTED, kafka_offset=msg.offset)


def test_a_decoded_event_rejected_later_keeps_its_project(project: Project) -> None:
    ev = event(subject="s" * 600, extensions={"k8xproject": project.slug})
    row = _rejected(message(ev, offset=1))
    assert "subject" in row.reason
    assert row.project_id == project.pk


def test_an_undecodable_binary_message_takes_the_project_of_its_header(project: Project) -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"x-1"),
        ("ce_source", b"/tests"),
        ("ce_type", b"com.acme.order.created"),
        ("ce_time", b"yesterday"),
        ("ce_k8xproject", project.slug.encode()),
        ("content-type", b"application/json"),
    ]
    row = _rejected(message(headers=headers, value=b'{"n": 1}', offset=2))
    assert "time" in row.reason
    assert row.project_id == project.pk


def test_an_undecodable_structured_message_takes_the_project_of_its_value(project: Project) -> None:
    body = {"specversion": "1.0", "id": "x", "source": "/t", "type": "t", "time": "no", "k8xproject": project.slug}
    msg = message(headers=[("content-type", b"application/cloudevents+json")], value=json.dumps(body).encode())
    assert _rejected(msg).project_id == project.pk


def test_without_a_known_project_a_reject_is_platform_wide(project: Project) -> None:
    assert _rejected(message(headers=[("ce_k8xproject", b"no-such-project")], value=b"{", offset=3)).project is None
    assert _rejected(message(headers=[], value=b"not json", offset=4)).project is None
