"""Metrics fed by the watcher: k8x_watch_log_bytes_total counts the followed log
bytes it appends to a run's log, and a stopped watcher (shut down, or it lost its
Lease) appends and counts nothing more."""

from __future__ import annotations

import uuid

import pytest

from k8x_core.metrics import REGISTRY
from k8x_core.models import Project, Run, RunStatus, Service, TriggerKind
from k8x_core.watch.watcher import Watcher


def log_bytes() -> float:
    return REGISTRY.get_sample_value("k8x_watch_log_bytes_total") or 0.0


@pytest.mark.django_db
def test_followed_log_bytes_are_counted_until_the_watcher_stops() -> None:
    project = Project.objects.create(slug=f"m{uuid.uuid4().hex[:6]}")
    service = Service.objects.create(project=project, name="svc", image="localhost:5000/k8x/busybox:1")
    run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.RUNNING)
    watcher = Watcher(follow_logs=True)
    # What the watcher notes when it starts following a run's containers.
    watcher._log_bytes[str(run.pk)] = 0
    before = log_bytes()

    watcher.log_append(str(run.pk), ["2026-11-27T10:00:00Z héllo", "2026-11-27T10:00:01Z world"])
    run.refresh_from_db()
    assert run.log == "2026-11-27T10:00:00Z héllo\n2026-11-27T10:00:01Z world\n"
    assert log_bytes() - before == len(run.log.encode())

    watcher.stop()
    watcher.log_append(str(run.pk), ["2026-11-27T10:00:02Z after the stop"])
    run.refresh_from_db()
    assert "after the stop" not in run.log
    assert log_bytes() - before == len(run.log.encode())
