"""A paused service on the real cluster: its runs keep being queued (the hub
still matches), the launcher makes no Job for them, and Resume launches them,
oldest first and within max concurrency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_rq
import pytest

from k8x_core.models import Run, RunStatus, Service, run_job_name
from k8x_core.runs.launch import LaunchResult, run_launch
from k8x_core.runs.logs import run_log_text
from k8x_core.runs.pause import service_pause, service_resume
from k8x_core.runs.queue import launch_job_id
from k8x_core.watch.watcher import Watcher
from tests.cluster_fixtures import admin_job_exists
from tests.k8x_core.runs.conftest import send_event, wait_run

pytestmark = pytest.mark.cluster


def test_paused_run_stays_queued_and_resume_launches_it(
    make_service: Callable[..., Service],
    queue_name: str,
    watcher: Watcher,
    start_worker: Callable[..., Any],
    kube_api: Any,
) -> None:
    service = make_service("held", command=["sh", "-c", "echo resumed"])
    service_pause(service=service)
    (run,) = send_event("com.test.held")
    assert run.status == RunStatus.QUEUED

    assert run_launch(run_id=run.pk) == LaunchResult.PAUSED
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert not admin_job_exists(kube_api, service.project.namespace, run_job_name(run.pk))
    # The hub's enqueue was taken by that launch; nothing is re-enqueued while paused.
    django_rq.get_queue(queue_name).empty()

    assert service_resume(service=service) == [run.pk]
    start_worker(burst=True, simple=True)
    done = wait_run(run.pk)
    assert done.status == RunStatus.SUCCEEDED, (done.reason, done.message)
    assert "resumed" in run_log_text(done.pk)


def test_resume_respects_max_concurrency(make_service: Callable[..., Service], queue_name: str) -> None:
    service = make_service("limited", max_concurrency=1)
    service_pause(service=service)
    runs = [send_event("com.test.limited")[0] for _ in range(3)]
    queue = django_rq.get_queue(queue_name)
    queue.empty()

    # Only the oldest run fits the one slot; the others follow as runs end.
    assert service_resume(service=service) == [runs[0].pk]
    assert queue.job_ids == [launch_job_id(runs[0].pk)]
    assert set(Run.objects.filter(service=service).values_list("status", flat=True)) == {RunStatus.QUEUED}
