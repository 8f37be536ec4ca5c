"""The launch read's two SQL queries give what the ORM gives on the same rows."""

from __future__ import annotations

import uuid

import pytest

from k8x_core.events.ce import ce_new
from k8x_core.models import Event, EventOutcome, Project, Run, Service, TriggerKind
from k8x_core.runs.configs import (
    config_set,
    configs_resolve,
    registry_login_set,
    registry_logins_resolve,
    registry_logins_reveal,
    secret_keys_resolve,
    secret_set,
    secrets_resolve,
    secrets_reveal,
)
from k8x_core.runs.launchread import launch_run_read, launch_scope_read

pytestmark = pytest.mark.django_db

TEMPLATE = "spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: x\n"


@pytest.fixture
def service() -> Service:
    project = Project.objects.create(
        slug="acme",
        quota={"pods": "3"},
        limits={"cpu": {"max": "1"}},
        default_resources={"limits": {"memory": "64Mi"}},
        default_timeout=90,
        node_selector={"k8x.io/pool": "batch"},
        tolerations=[{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}],
    )
    Project.objects.create(slug="other")
    return Service.objects.create(
        project=project,
        name="svc",
        image="busybox",
        command=["sh", "-c"],
        args=["echo ü"],
        resources={"limits": {"memory": "64Mi"}},
        job_template=TEMPLATE,
        timeout_seconds=30,
        retries=2,
        max_concurrency=3,
        paused=False,
    )


def _event(project: Project) -> Event:
    payload = ce_new(type="com.acme.x", source="/s", data={"n": 1, "nested": {"a": [1, 2]}}, subject="sub")
    return Event.objects.create(
        ce_id=payload["id"],
        source="/s",
        type="com.acme.x",
        subject="sub",
        payload=payload,
        outcome=EventOutcome.MATCHED,
        project=project,
        correlation_id="corr",
    )


def _same_fields(record: object, model: object, names: list[str]) -> None:
    for name in names:
        assert getattr(record, name) == getattr(model, name), name
        assert type(getattr(record, name)) is type(getattr(model, name)), name


def test_run_read_matches_the_orm(service: Service) -> None:
    event = _event(service.project)
    run = Run.objects.create(service=service, event=event, correlation_id="corr", params={"form": [1]})
    record = launch_run_read(run_id=run.pk)
    orm = Run.objects.select_related("service__project", "event").get(pk=run.pk)
    assert record is not None
    _same_fields(record, orm, ["id", "pk", "service_id", "event_id", "status", "trigger_kind", "correlation_id"])
    _same_fields(record, orm, ["params", "created_at"])
    _same_fields(
        record.service,
        orm.service,
        [
            "id",
            "pk",
            "project_id",
            "name",
            "active",
            "paused",
            "image",
            "command",
            "args",
            "resources",
            "job_template",
            "timeout_seconds",
            "retries",
            "max_concurrency",
            "updated_at",
        ],
    )
    _same_fields(
        record.service.project,
        orm.service.project,
        [
            "id",
            "pk",
            "slug",
            "namespace",
            "pod_security_level",
            "quota",
            "limits",
            "default_resources",
            "default_timeout",
            "node_selector",
            "tolerations",
        ],
    )
    assert record.event is not None and orm.event is not None
    _same_fields(record.event, orm.event, ["id", "ce_id", "type", "source", "subject", "time", "payload"])


def test_run_read_without_event_and_missing_run(service: Service) -> None:
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, params=None)
    record = launch_run_read(run_id=str(run.pk))
    assert record is not None
    assert record.event is None and record.event_id is None and record.params is None
    assert record.service.timeout_seconds == 30
    assert launch_run_read(run_id=uuid.uuid4()) is None


def test_scope_read_matches_configs_and_secrets_resolve(service: Service) -> None:
    other = Service.objects.create(project=service.project, name="other", image="x")
    elsewhere = Service.objects.create(project=Project.objects.get(slug="other"), name="far", image="x")
    config_set(key="LEVEL", value="platform")
    config_set(key="REGION", value="eu")
    config_set(key="LEVEL", value="project", project=service.project)
    config_set(key="LEVEL", value="service", service=service)
    config_set(key="ONLY_OTHER", value="o", service=other)
    config_set(key="FAR", value="f", project=elsewhere.project)
    secret_set(key="TOKEN", value="platform")
    secret_set(key="TOKEN", value="project", project=service.project)
    secret_set(key="TOKEN", value="service", service=service)
    secret_set(key="DB", value="pw", project=service.project)
    secret_set(key="FAR_SECRET", value="x", service=elsewhere)

    # Registry logins: the project's pull secret, never variables; one per server.
    registry_login_set(key="B", server="b.example.com", username="ub", password="pb", project=service.project)
    registry_login_set(key="A", server="b.example.com", username="ua", password="pa", project=service.project)
    registry_login_set(key="C", server="c.example.com:5000", username="uc", password="pc", project=service.project)
    registry_login_set(key="FAR", server="far.example.com", username="uf", password="pf", project=elsewhere.project)

    for svc in (service, other, elsewhere):
        configs, secrets, registry = launch_scope_read(project_id=svc.project_id, service_id=svc.pk)
        assert configs == configs_resolve(service=svc)
        assert sorted(secrets) == secret_keys_resolve(service=svc)
        assert secrets_reveal(secrets) == secrets_resolve(service=svc)
        assert registry_logins_reveal(registry) == registry_logins_resolve(project_id=svc.project_id)
    configs, secrets, registry = launch_scope_read(project_id=service.project_id, service_id=service.pk)
    assert configs == {"LEVEL": "service", "REGION": "eu"}
    assert secrets_reveal(secrets) == {"DB": "pw", "TOKEN": "service"}
    assert [(x.server, x.username, x.password) for x in registry_logins_reveal(registry)] == [
        ("b.example.com", "ua", "pa"),
        ("c.example.com:5000", "uc", "pc"),
    ]
    assert registry_logins_reveal(launch_scope_read(project_id=other.project_id, service_id=other.pk).registry) == (
        registry_logins_reveal(registry)
    )
