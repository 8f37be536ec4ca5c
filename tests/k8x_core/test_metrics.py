"""A stopped watcher (shut down, or it lost its Lease) appends nothing more to a
run's log. (k8x_watch_log_bytes_total counts the bytes its followers read from the
cluster: tests/k8x_core/runs/test_launch_metrics.py.)"""

from __future__ import annotations

import uuid

import pytest

from k8x_core.models import Project, Run, RunStatus, Service, TriggerKind
from k8x_core.runs.logs import run_log_text
from k8x_core.watch.watcher import Watcher


@pytest.mark.django_db
def test_a_stopped_watcher_appends_nothing() -> None:
    project = Project.objects.create(slug=f"m{uuid.uuid4().hex[:6]}")
    service = Service.objects.create(project=project, name="svc", image="localhost:5000/k8x/busybox:1")
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.RUNNING)
    watcher = Watcher(follow_logs=True)
    # What the watcher notes when it starts following a run's containers.
    watcher._log_bytes[str(run.pk)] = 0

    assert watcher.log_append(str(run.pk), ["2026-11-27T10:00:00Z héllo", "2026-11-27T10:00:01Z world"])
    assert run_log_text(run.pk) == "2026-11-27T10:00:00Z héllo\n2026-11-27T10:00:01Z world\n"

    watcher.stop()
    assert watcher.log_append(str(run.pk), ["2026-11-27T10:00:02Z after the stop"]) is False
    assert "after the stop" not in run_log_text(run.pk)
