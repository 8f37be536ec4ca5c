"""run_transition's plain UPDATE writes what the ORM's update() writes, claims once,
and leaves expressions to the ORM."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db.models import F
from django.forms.models import model_to_dict
from django.utils import timezone

from k8x_core.models import Project, Run, RunStatus, Service, TriggerKind
from k8x_core.runs.transitions import run_transition

pytestmark = pytest.mark.django_db


@pytest.fixture
def service() -> Service:
    return Service.objects.create(project=Project.objects.create(slug="tr"), name="s", image="x")


def test_plain_update_writes_what_the_orm_writes(service: Service) -> None:
    ours, orm = (Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL) for _ in range(2))
    now = timezone.now()
    fields: dict[str, Any] = {
        "exit_code": 3,
        "reason": "OOMKilled",
        "message": "ü ' \" %s",
        "finished_at": now,
        "started_at": now - timedelta(seconds=5),
        "attempts": 2,
        "job_name": "k8x-run-x",
        "pod_name": "k8x-run-x-abc",
        "log_truncated": True,
    }
    assert run_transition(run_id=ours.pk, to=RunStatus.FAILED, **fields)
    assert Run.objects.filter(pk=orm.pk).update(status=RunStatus.FAILED, **fields) == 1
    ours.refresh_from_db()
    orm.refresh_from_db()
    skip = {"id"}
    assert {k: v for k, v in model_to_dict(ours).items() if k not in skip} == {
        k: v for k, v in model_to_dict(orm).items() if k not in skip
    }
    assert (ours.status, ours.exit_code, ours.finished_at, ours.message) == (RunStatus.FAILED, 3, now, "ü ' \" %s")


def test_claims_once_from_the_named_statuses_only(service: Service) -> None:
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL)
    assert run_transition(run_id=str(run.pk), to=RunStatus.STARTING, from_statuses=[RunStatus.QUEUED], job_name="j")
    assert not run_transition(run_id=run.pk, to=RunStatus.STARTING, from_statuses=[RunStatus.QUEUED], job_name="j")
    assert not run_transition(run_id=run.pk, to=RunStatus.RUNNING, from_statuses=[RunStatus.QUEUED])
    assert run_transition(run_id=run.pk, to=RunStatus.RUNNING)
    run.refresh_from_db()
    assert (run.status, run.job_name) == (RunStatus.RUNNING, "j")


def test_expressions_go_through_the_orm(service: Service) -> None:
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, attempts=1)
    assert run_transition(run_id=run.pk, to=RunStatus.RUNNING, attempts=F("attempts") + 1)
    run.refresh_from_db()
    assert (run.status, run.attempts) == (RunStatus.RUNNING, 2)


def test_a_field_that_is_not_a_column_is_refused(service: Service) -> None:
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL)
    with pytest.raises(ValueError, match="log_chunks"):
        run_transition(run_id=run.pk, to=RunStatus.RUNNING, log_chunks=1)
