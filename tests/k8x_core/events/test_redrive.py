"""Re-driving a rejected event: the draft made from what the hub kept, and what is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from k8x_core.events.ingest import IngestRefused
from k8x_core.events.redrive import event_redrive, rejected_event_draft
from k8x_core.models import Event, EventOutcome, Membership, Project, Role
from tests.console.test_events_kafka import read_events

pytestmark = pytest.mark.django_db


def _rejected(project: Project | None, *, headers: dict[str, str], value: str) -> Event:
    return Event.objects.create(
        outcome=EventOutcome.REJECTED,
        reason="bad",
        project=project,
        payload={"rejected_message": {"headers": headers, "value": value}},
    )


@pytest.fixture
def owner_of() -> tuple[Project, User]:
    project = Project.objects.create(slug="redrive-p")
    user = User.objects.create_user(username="redrive-owner")
    Membership.objects.create(project=project, user=user, role=Role.OWNER)
    return project, user


def test_the_draft_of_a_structured_reject_is_its_event_without_reserved_extensions() -> None:
    body = {"specversion": "1.0", "id": "a", "source": "/s", "type": "t", "time": "no", "k8xproject": "x", "data": 1}
    row = _rejected(None, headers={"content-type": "application/cloudevents+json"}, value=json.dumps(body))
    assert rejected_event_draft(event=row) == {
        "specversion": "1.0",
        "id": "a",
        "source": "/s",
        "type": "t",
        "time": "no",
        "data": 1,
    }


def test_a_body_that_is_not_json_becomes_text_data() -> None:
    row = _rejected(None, headers={"ce_id": "b", "ce_source": "/s", "ce_type": "t"}, value="plain text")
    assert rejected_event_draft(event=row) == {
        "specversion": "1.0",
        "id": "b",
        "source": "/s",
        "type": "t",
        "data": "plain text",
    }


def test_keep_id_sends_the_same_id_scoped_to_the_project(
    owner_of: tuple[Project, User], topic: str, settings: Any
) -> None:
    settings.K8X_RATE_LIMIT_PER_MINUTE = 0
    project, user = owner_of
    row = _rejected(project, headers={}, value="")
    edited = {"specversion": "1.0", "id": "keep-me", "source": "/s", "type": "com.acme.t", "k8xproject": "other"}
    accepted = event_redrive(event=row, edited=edited, user=user, keep_id=True)
    assert accepted.id == "keep-me"
    (sent,) = read_events(topic, 1)
    assert (sent["id"], sent["k8xproject"]) == ("keep-me", "redrive-p")  # the project's, never the edited one


def test_only_a_rejected_event_of_a_project_is_re_driven(owner_of: tuple[Project, User]) -> None:
    project, user = owner_of
    ok = {"specversion": "1.0", "id": "x", "source": "/s", "type": "t"}
    matched = Event.objects.create(ce_id="m", source="/s", type="t", outcome=EventOutcome.MATCHED, project=project)
    with pytest.raises(ValueError, match="only a rejected event"):
        event_redrive(event=matched, edited=ok, user=user)
    with pytest.raises(ValueError, match="belongs to no project"):
        event_redrive(event=_rejected(None, headers={}, value=""), edited=ok, user=user)
    with pytest.raises(IngestRefused) as refused:
        event_redrive(event=_rejected(project, headers={}, value=""), edited={**ok, "specversion": "0.3"}, user=user)
    assert refused.value.field == "specversion"
    stranger = User.objects.create_user(username="stranger")
    with pytest.raises(IngestRefused) as refused:
        event_redrive(event=_rejected(project, headers={}, value=""), edited=ok, user=stranger)
    assert refused.value.status == 403
