"""Pausing a service in the console: its queued runs stay queued (shown as
"paused") and are not launched; Resume sends them to launch, Skip pending
cancels them. Admins only."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from redis import Redis
from rq import Queue

from k8x_core.models import Run, RunStatus, TriggerKind
from k8x_core.runs.launch import LaunchResult, run_launch
from tests.console.conftest import World, client_for


def _url(action: str) -> str:
    return reverse(f"console:service_{action}", kwargs={"slug": "acme", "name": "billing"})


def test_pause_resume_and_skip_from_the_service_page(
    transactional_db: None, world: World, queue_name: str, settings: Any
) -> None:
    admin = client_for(world.admin)
    assert admin.post(_url("pause")).status_code == 302
    world.service.refresh_from_db()
    assert world.service.paused
    older = Run.objects.create(service=world.service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.QUEUED)
    newer = Run.objects.create(service=world.service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.QUEUED)

    # The launcher leaves them queued, without a Job (no cluster call is made).
    assert run_launch(run_id=older.pk) == LaunchResult.PAUSED
    older.refresh_from_db()
    assert older.status == RunStatus.QUEUED

    page = admin.get(reverse("console:service_detail", kwargs={"slug": "acme", "name": "billing"})).content.decode()
    assert '<span class="badge warn" title="Runs are queued but not launched until resumed">paused</span>' in page
    assert "Resume" in page and "Skip pending" in page
    assert f'data-run-status="queued" hx-get="/runs/{older.pk}/badge/"' in page
    badge = admin.get(reverse("console:run_badge", kwargs={"run_id": older.pk})).content.decode()
    assert ">paused</span>" in badge
    assert "paused</span>" in admin.get(reverse("console:service_list")).content.decode()

    # Resume: both are enqueued, oldest first.
    assert admin.post(_url("resume")).status_code == 302
    world.service.refresh_from_db()
    assert not world.service.paused
    queue = Queue(queue_name, connection=Redis.from_url(settings.REDIS_URL))
    (job,) = queue.get_jobs()
    assert job.func_name == "worker.jobs.launch_runs"
    assert job.args == ([str(older.pk), str(newer.pk)],)
    queue.empty()

    # Skip pending cancels what is still queued.
    assert admin.post(_url("skip_pending")).status_code == 302
    for run in (older, newer):
        run.refresh_from_db()
        assert (run.status, run.reason, run.message) == (RunStatus.CANCELLED, "Skipped", "skipped by admin1")
        assert run.finished_at is not None
    # The running run is not touched.
    world.run.refresh_from_db()
    assert world.run.status == RunStatus.RUNNING


def test_only_admins_pause(world: World) -> None:
    user = client_for(world.user)
    for action in ("pause", "resume", "skip_pending"):
        assert user.post(_url(action)).status_code == 403
    assert client_for(world.outsider).post(_url("pause")).status_code == 404
    page = user.get(reverse("console:service_detail", kwargs={"slug": "acme", "name": "billing"})).content.decode()
    assert "Skip pending" not in page
    world.service.refresh_from_db()
    assert not world.service.paused
