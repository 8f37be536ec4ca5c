"""Fixtures for the console's view and websocket tests: two projects, one user per role, services and runs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client

from k8x_core.models import Event, EventOutcome, Membership, Project, Role, Run, RunStatus, Service, TriggerKind
from k8x_core.runs.logs import run_log_store

RUN_LOG = "2026-01-01T00:00:01.000000000Z hello\n2026-01-01T00:00:02.000000000Z world\n"

PASSWORD = "console-test-pw-1"


@dataclass
class World:
    acme: Project
    other: Project
    owner: User
    admin: User
    user: User
    outsider: User  # member of `other` only
    service: Service
    other_service: Service
    run: Run
    other_run: Run
    event: Event
    other_event: Event


def make_user(username: str, **extra: object) -> User:
    return User.objects.create_user(username=username, password=PASSWORD, **extra)  # type: ignore[arg-type]


@pytest.fixture
def world(db: None) -> World:
    acme = Project.objects.create(slug="acme", name="Acme")
    other = Project.objects.create(slug="other", name="Other")
    owner, admin, user, outsider = (make_user(n) for n in ("owner1", "admin1", "user1", "outsider1"))
    Membership.objects.create(project=acme, user=owner, role=Role.OWNER)
    Membership.objects.create(project=acme, user=admin, role=Role.ADMIN)
    Membership.objects.create(project=acme, user=user, role=Role.USER)
    Membership.objects.create(project=other, user=outsider, role=Role.OWNER)
    service = Service.objects.create(project=acme, name="billing", image="busybox", tags=["money", "nightly"])
    other_service = Service.objects.create(project=other, name="secretive", image="busybox")
    event = Event.objects.create(
        ce_id="e1",
        source="/shop",
        type="com.acme.order",
        outcome=EventOutcome.MATCHED,
        project=acme,
        correlation_id="flow-acme",
        payload={"specversion": "1.0", "id": "e1", "source": "/shop", "type": "com.acme.order", "data": {"n": 1}},
    )
    other_event = Event.objects.create(
        ce_id="e2",
        source="/other",
        type="com.other.thing",
        outcome=EventOutcome.MATCHED,
        project=other,
        correlation_id="flow-other",
        payload={"specversion": "1.0", "id": "e2", "source": "/other", "type": "com.other.thing"},
    )
    run = Run.objects.create(
        service=service,
        event=event,
        trigger_kind=TriggerKind.EVENT,
        correlation_id="flow-acme",
        status=RunStatus.RUNNING,
    )
    run_log_store(run_id=run.pk, lines=RUN_LOG.splitlines())
    other_run = Run.objects.create(
        service=other_service,
        event=other_event,
        trigger_kind=TriggerKind.EVENT,
        correlation_id="flow-other",
        status=RunStatus.SUCCEEDED,
    )
    run_log_store(run_id=other_run.pk, lines=["2026-01-01T00:00:01Z top secret output"])
    return World(acme, other, owner, admin, user, outsider, service, other_service, run, other_run, event, other_event)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client
