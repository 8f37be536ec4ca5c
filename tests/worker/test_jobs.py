"""worker.jobs.launch_run as RQ runs it: by dotted path, with a str run id, from a
real Redis queue, against the real cluster."""

from __future__ import annotations

import uuid
from typing import Any

import django_rq
import pytest
from rq import SimpleWorker

from k8x_core import kube
from k8x_core.models import Project, Run, RunStatus, Service, TriggerKind, run_job_name
from k8x_core.runs.queue import run_enqueue_now
from tests.k8x_core.runs.conftest import project  # noqa: F401  (fixtures)
from worker.jobs import launch_run

pytestmark = pytest.mark.cluster


def test_launch_job_from_the_queue_creates_the_job_and_marks_the_run(project: Project, queue_name: str) -> None:  # noqa: F811
    service = Service.objects.create(project=project, name="queued", image="localhost:5000/k8x/busybox:1")
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, params={"a": 1}, correlation_id="c1")
    run_enqueue_now(run_id=run.pk)
    queue = django_rq.get_queue(queue_name)
    assert queue.get_job_ids() == [f"launch-{run.pk}"]
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    run.refresh_from_db()
    assert run.status in (RunStatus.STARTING, RunStatus.RUNNING)
    assert run.job_name == run_job_name(run.pk)
    job = kube.job_get(namespace=project.namespace, name=run.job_name)
    assert job["metadata"]["labels"]["k8x.io/run-id"] == str(run.pk)
    # A repeated job finds the run launched already.
    assert launch_run(str(run.pk)) == "skipped"


def test_launch_job_for_an_unknown_run_does_nothing(transactional_db: Any) -> None:
    assert launch_run(str(uuid.uuid4())) == "skipped"
