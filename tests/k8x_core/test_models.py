"""Every model constraint holds in the database itself (PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from k8x_core.models import (
    ApiKey,
    Config,
    Event,
    EventOutcome,
    Membership,
    Project,
    Run,
    RunStatus,
    Scope,
    Secret,
    Service,
    Trigger,
    TriggerKind,
    run_job_name,
)
from k8x_core.runs.transitions import run_transition

pytestmark = pytest.mark.django_db


def refused(fn, *args, **kwargs) -> str:
    """Run fn in a savepoint; return the database's message, fail if accepted."""
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        fn(*args, **kwargs)
    return str(info.value)


@pytest.fixture
def project() -> Project:
    return Project.objects.create(slug="acme")


@pytest.fixture
def service(project: Project) -> Service:
    return Service.objects.create(project=project, name="billing", image="localhost:5000/k8x/busybox:1")


def event(**kw) -> Event:
    fields = {"ce_id": uuid.uuid4().hex, "source": "test/src", "type": "com.acme.x", "outcome": EventOutcome.MATCHED}
    fields.update(kw)
    return Event.objects.create(**fields)


def test_project_namespace_defaults_from_slug(project: Project) -> None:
    assert project.namespace == "k8x-acme"
    assert project.name == "acme"


def test_project_slug_must_be_dns_label() -> None:
    assert "project_slug_dns_label" in refused(Project.objects.create, slug="Bad_Slug", namespace="ok")


def test_membership_unique_and_role_valid(project: Project) -> None:
    user = User.objects.create_user("ann")
    Membership.objects.create(project=project, user=user, role="admin")
    assert "membership_unique_user" in refused(Membership.objects.create, project=project, user=user, role="user")
    other = User.objects.create_user("bob")
    assert "membership_role_valid" in refused(Membership.objects.create, project=project, user=other, role="god")


def test_service_name_unique_per_project(project: Project, service: Service) -> None:
    assert "service_unique_name_per_project" in refused(
        Service.objects.create, project=project, name="billing", image="x"
    )
    other = Project.objects.create(slug="other")
    assert Service.objects.create(project=other, name="billing", image="x").pk


@pytest.mark.parametrize("name", ["Billing", "-billing", "billing-", "bill_ing", ""])
def test_service_name_must_be_dns_label(project: Project, name: str) -> None:
    assert "service_name_dns_label" in refused(Service.objects.create, project=project, name=name, image="x")


def test_service_needs_image_or_template(project: Project) -> None:
    assert "service_has_image_or_template" in refused(Service.objects.create, project=project, name="empty")
    assert Service.objects.create(project=project, name="tpl", job_template="kind: Job").pk


def test_service_timeout_and_concurrency_positive(project: Project) -> None:
    assert "service_timeout_positive" in refused(
        Service.objects.create, project=project, name="t", image="x", timeout_seconds=0
    )
    assert "service_concurrency_positive" in refused(
        Service.objects.create, project=project, name="c", image="x", max_concurrency=0
    )


def test_trigger_needs_event_type(service: Service) -> None:
    assert "trigger_event_type_not_empty" in refused(Trigger.objects.create, service=service, event_type="")


@pytest.mark.parametrize("model", [Config, Secret])
@pytest.mark.parametrize("key", ["1ABC", "WITH-DASH", "has space", ""])
def test_scoped_key_must_be_env_name(model, key: str) -> None:
    name = f"{model.__name__.lower()}_key_env_name"
    assert name in refused(model.objects.create, scope=Scope.PLATFORM, key=key)


@pytest.mark.parametrize("model", [Config, Secret])
def test_scoped_key_k8x_prefix_is_reserved(model) -> None:
    assert f"{model.__name__.lower()}_key_not_reserved" in refused(
        model.objects.create, scope=Scope.PLATFORM, key="K8X_RUN_ID"
    )


@pytest.mark.parametrize("model", [Config, Secret])
def test_scope_must_match_its_references(model, project: Project, service: Service) -> None:
    name = f"{model.__name__.lower()}_scope_consistent"
    assert name in refused(model.objects.create, scope=Scope.PLATFORM, project=project, key="A")
    assert name in refused(model.objects.create, scope=Scope.PROJECT, key="A")
    assert name in refused(model.objects.create, scope=Scope.SERVICE, project=project, key="A")


@pytest.mark.parametrize("model", [Config, Secret])
def test_scoped_keys_unique_per_scope(model, project: Project, service: Service) -> None:
    lower = model.__name__.lower()
    model.objects.create(scope=Scope.PLATFORM, key="A")
    assert f"{lower}_unique_platform_key" in refused(model.objects.create, scope=Scope.PLATFORM, key="A")
    model.objects.create(scope=Scope.PROJECT, project=project, key="A")
    assert f"{lower}_unique_project_key" in refused(model.objects.create, scope=Scope.PROJECT, project=project, key="A")
    model.objects.create(scope=Scope.SERVICE, service=service, key="A")
    assert f"{lower}_unique_service_key" in refused(model.objects.create, scope=Scope.SERVICE, service=service, key="A")
    # The same key at another project's scope is fine.
    model.objects.create(scope=Scope.PROJECT, project=Project.objects.create(slug="zeta"), key="A")


def test_service_scoped_entry_takes_the_services_project(service: Service) -> None:
    config = Config.objects.create(scope=Scope.SERVICE, service=service, key="LEVEL", value="1")
    assert config.project_id == service.project_id


def test_event_source_and_id_unique_for_accepted_events(project: Project) -> None:
    first = event(ce_id="e-1", source="s")
    # No project on either: NULL is one key, not distinct.
    assert "event_unique_project_source_id" in refused(event, ce_id="e-1", source="s")
    # Unmatched events are a sample outside the guard (k8x_core.hub.unmatched): no run, no redelivery check.
    event(ce_id="e-1", source="s", outcome=EventOutcome.UNMATCHED)
    # Per project: the same source and id in a project is another event, once.
    mine = event(ce_id="e-1", source="s", project=project)
    assert mine.pk != first.pk
    assert "event_unique_project_source_id" in refused(event, ce_id="e-1", source="s", project=project)
    # Redelivery is recorded beside the original, as a duplicate.
    dup = event(ce_id="e-1", source="s", outcome=EventOutcome.DUPLICATE, duplicate_of=first)
    assert dup.duplicate_of_id == first.pk
    # Same id from another source is another event.
    assert event(ce_id="e-1", source="other").pk


def test_event_attributes_required_unless_rejected() -> None:
    assert "event_attributes_present_unless_rejected" in refused(event, ce_id="")
    rejected = event(ce_id="", source="", type="", outcome=EventOutcome.REJECTED, reason="bad JSON")
    assert rejected.reason == "bad JSON"
    assert "event_outcome_valid" in refused(event, outcome="lost")


def test_one_event_run_per_event_and_service(service: Service) -> None:
    ev = event()
    Run.objects.create(service=service, event=ev, trigger_kind=TriggerKind.EVENT)
    assert "run_unique_event_service" in refused(
        Run.objects.create, service=service, event=ev, trigger_kind=TriggerKind.EVENT
    )
    # A re-run of the same event is a new run with trigger "retry".
    assert Run.objects.create(service=service, event=ev, trigger_kind=TriggerKind.RETRY).pk


def test_event_runs_need_an_event_and_valid_enums(service: Service) -> None:
    assert "run_event_trigger_has_event" in refused(Run.objects.create, service=service, trigger_kind="event")
    assert "run_status_valid" in refused(Run.objects.create, service=service, trigger_kind="manual", status="paused")
    assert "run_trigger_kind_valid" in refused(Run.objects.create, service=service, trigger_kind="telepathy")


def test_run_status_only_moves_forward(service: Service) -> None:
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    message = refused(Run.objects.filter(pk=run.pk).update, status=RunStatus.QUEUED)
    assert "may only move forward" in message
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)  # unchanged status is not a move
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    # One terminal status never turns into another.
    assert "may only move forward" in refused(Run.objects.filter(pk=run.pk).update, status=RunStatus.FAILED)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED


def test_run_transition_claims_once(service: Service) -> None:
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL)
    assert run_transition(run_id=run.pk, to=RunStatus.STARTING, from_statuses=[RunStatus.QUEUED])
    assert not run_transition(run_id=run.pk, to=RunStatus.STARTING, from_statuses=[RunStatus.QUEUED])
    assert not run_transition(run_id=run.pk, to=RunStatus.QUEUED)
    assert run_transition(run_id=run.pk, to=RunStatus.FAILED, exit_code=3)
    run.refresh_from_db()
    assert (run.status, run.exit_code) == (RunStatus.FAILED, 3)


def test_job_name_is_deterministic_and_valid() -> None:
    run_id = uuid.uuid4()
    name = run_job_name(run_id)
    assert name == run_job_name(str(run_id))
    assert len(name) <= 63 and name.startswith("k8x-run-")


def test_api_key_hash_unique(project: Project) -> None:
    ApiKey.objects.create(project=project, name="a", prefix="p", key_hash="h" * 64)
    assert "key_hash" in refused(ApiKey.objects.create, project=project, name="b", prefix="p", key_hash="h" * 64)


def test_deleting_an_event_deletes_its_event_runs(service: Service) -> None:
    ev = event()
    run = Run.objects.create(service=service, event=ev, trigger_kind=TriggerKind.EVENT)
    manual = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL)
    ev.delete()
    assert not Run.objects.filter(pk=run.pk).exists()
    assert Run.objects.filter(pk=manual.pk).exists()
