"""worker.jobs.launch_runs, the hub's chunk job, as RQ runs it from a real Redis
queue against the real cluster: every run of the chunk is launched, one bad
run does not stop the others, and the chunk's reconciler entries are cleared."""

from __future__ import annotations

import django_rq
import pytest
from rq import SimpleWorker
from rq.job import JobStatus

from k8x_core.models import Project, Run, RunStatus, Service, TriggerKind, run_job_name
from k8x_core.runs.queue import CHUNK_RESULT_TTL, launch_jobs_lookup, runs_enqueue_now
from tests.k8x_core.runs.conftest import project  # noqa: F401  (fixtures)
from worker.reconcile import _live

pytestmark = pytest.mark.cluster


def test_a_chunk_launches_each_run_and_isolates_a_failing_one(project: Project, queue_name: str) -> None:  # noqa: F811
    service = Service.objects.create(project=project, name="chunked", image="localhost:5000/k8x/busybox:1")
    runs = [Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, params={"i": i}) for i in range(2)]
    # A run id that makes launch_run raise sits between two good ones.
    ids = [str(runs[0].pk), "not-a-run-id", str(runs[1].pk)]
    runs_enqueue_now(run_ids=ids, chunk=25)
    queue = django_rq.get_queue(queue_name)
    (job_id,) = queue.get_job_ids()
    assert launch_jobs_lookup(queue_name=queue_name, run_ids=ids) == [job_id] * 3
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    for run in runs:
        run.refresh_from_db()
        assert run.status in (RunStatus.STARTING, RunStatus.RUNNING), run.status
        assert run.job_name == run_job_name(run.pk)
    job = queue.fetch_job(job_id)
    assert job is not None and job.get_status() == JobStatus.FAILED
    assert "1 of 3 launches failed: not-a-run-id" in (job.latest_result().exc_string or "")  # type: ignore[union-attr]
    assert launch_jobs_lookup(queue_name=queue_name, run_ids=ids) == [None, None, None]


def test_a_finished_chunk_is_kept_a_short_while_and_is_not_live(project: Project, queue_name: str) -> None:  # noqa: F811
    """A finished chunk job expires instead of being deleted at once (a delete costs
    the worker Redis round trips after every job); the reconciler does not take it
    for a live launch job."""
    service = Service.objects.create(project=project, name="kept", image="localhost:5000/k8x/busybox:1")
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL)
    runs_enqueue_now(run_ids=[run.pk], chunk=25)
    queue = django_rq.get_queue(queue_name)
    (job_id,) = queue.get_job_ids()
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job = queue.fetch_job(job_id)
    assert job is not None and job.get_status() == JobStatus.FINISHED
    assert job.return_value() == {str(run.pk): "started"}
    assert 0 < queue.connection.ttl(job.key) <= CHUNK_RESULT_TTL
    assert not _live(job)
    assert launch_jobs_lookup(queue_name=queue_name, run_ids=[str(run.pk)]) == [None]
