"""The reconciler: stale ``queued`` runs without a launch job in Redis are
enqueued again; runs with a live job, fresh runs and runs past ``queued`` are
left alone. Real PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from datetime import timedelta

import django_rq
import pytest
from django.core.management import call_command
from django.utils import timezone
from rq.job import JobStatus

from k8x_core.models import Event, EventOutcome, Project, Run, RunStatus, Service, TriggerKind
from k8x_core.runs.queue import CHUNK_JOB_PREFIX, launch_jobs_lookup, run_enqueue_now, runs_enqueue_now
from worker.reconcile import runs_reconcile

# Transactional: enqueueing happens on commit (django-rq and k8x_core.runs.queue).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def service() -> Service:
    project = Project.objects.create(slug=f"p{uuid.uuid4().hex[:8]}")
    return Service.objects.create(project=project, name="svc", image="busybox")


def make_run(service: Service, *, age_seconds: float, status: RunStatus = RunStatus.QUEUED) -> Run:
    event = Event.objects.create(
        ce_id=uuid.uuid4().hex, source="/t", type="t", outcome=EventOutcome.MATCHED, payload={}
    )
    run = Run.objects.create(service=service, event=event, trigger_kind=TriggerKind.EVENT)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=age_seconds))
    if status != RunStatus.QUEUED:
        Run.objects.filter(pk=run.pk).update(status=status)
    return run


def job_ids(queue_name: str) -> set[str]:
    return set(django_rq.get_queue(queue_name).get_job_ids())


def test_stale_queued_runs_without_a_job_are_enqueued_again(service: Service, queue_name: str) -> None:
    lost = make_run(service, age_seconds=600)  # e.g. Redis restarted empty
    has_job = make_run(service, age_seconds=600)
    run_enqueue_now(run_id=has_job.id)
    fresh = make_run(service, age_seconds=1)  # the hub may still be enqueueing it
    started = make_run(service, age_seconds=600, status=RunStatus.STARTING)
    assert runs_reconcile(older_than=timedelta(seconds=60)) == 1
    ids = job_ids(queue_name)
    assert f"launch-{lost.id}" in ids
    assert f"launch-{has_job.id}" in ids
    assert f"launch-{fresh.id}" not in ids
    assert f"launch-{started.id}" not in ids
    # Nothing doubles on the next pass: every stale run now has its job.
    assert runs_reconcile(older_than=60) == 0
    assert len(django_rq.get_queue(queue_name).get_job_ids()) == 2


def test_a_failed_launch_job_of_a_still_queued_run_is_retried(service: Service, queue_name: str) -> None:
    run = make_run(service, age_seconds=600)
    run_enqueue_now(run_id=run.id)
    queue = django_rq.get_queue(queue_name)
    job = queue.fetch_job(f"launch-{run.id}")
    assert job is not None
    queue.remove(job)
    job.set_status(JobStatus.FAILED)
    assert runs_reconcile(older_than=60) == 1
    assert f"launch-{run.id}" in job_ids(queue_name)


def test_k8x_reconcile_once_command(service: Service, queue_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(service, age_seconds=600)
    call_command("k8x_reconcile", "--once", "--older-than", "60")
    assert capsys.readouterr().out.strip() == "1"


def test_runs_in_a_live_chunk_job_are_left_alone_and_found_once_it_is_gone(service: Service, queue_name: str) -> None:
    runs = [make_run(service, age_seconds=600) for _ in range(5)]
    runs_enqueue_now(run_ids=[r.id for r in runs], chunk=2)
    queue = django_rq.get_queue(queue_name)
    chunk_ids = queue.get_job_ids()
    assert len(chunk_ids) == 3 and all(j.startswith(CHUNK_JOB_PREFIX) for j in chunk_ids)
    assert runs_reconcile(older_than=60) == 0
    # The chunk of the first two runs is lost (e.g. Redis lost it, or it failed).
    lost_chunk = queue.fetch_job(launch_jobs_lookup(queue_name=queue_name, run_ids=[str(runs[0].id)])[0] or "")
    assert lost_chunk is not None
    lost = set(lost_chunk.args[0])
    assert len(lost) == 2
    queue.remove(lost_chunk)
    lost_chunk.delete()
    assert runs_reconcile(older_than=60) == 2
    ids = job_ids(queue_name)
    assert {f"launch-{rid}" for rid in lost} <= ids
    assert launch_jobs_lookup(queue_name=queue_name, run_ids=sorted(lost)) == [None, None]
    assert runs_reconcile(older_than=60) == 0
