"""Pausing a service: its triggers keep matching and its runs are queued, but
the launcher leaves them ``queued`` (no Job) until the service is resumed; the
reconciler does not re-enqueue them meanwhile. Resuming enqueues them, oldest
first, as many as the service's max concurrency allows (the rest follow as runs
end). Skipping cancels the queued runs (reason ``Skipped``)."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from k8x_core.models import Run, RunStatus, Service
from k8x_core.runs.launch import service_queue_advance
from k8x_core.runs.live import live_publish_status
from k8x_core.runs.queue import runs_enqueue_now
from k8x_core.runs.transitions import run_transition

SKIPPED = "Skipped"


def service_pause(*, service: Service) -> None:
    Service.objects.filter(pk=service.pk).update(paused=True, updated_at=timezone.now())
    service.paused = True


def service_resume(*, service: Service) -> list[uuid.UUID]:
    """Unpause and enqueue the queued runs (on commit). Returns their ids."""
    with transaction.atomic():
        Service.objects.filter(pk=service.pk).update(paused=False, updated_at=timezone.now())
        service.paused = False
        if service.max_concurrency:
            return service_queue_advance(service_id=service.pk)
        ids = list(
            Run.objects.filter(service_id=service.pk, status=RunStatus.QUEUED)
            .order_by("created_at", "id")
            .values_list("id", flat=True)
        )
        if ids:
            # Chunked as the hub does (K8X_LAUNCH_CHUNK runs per job, in order): a long
            # pause may have held many runs.
            transaction.on_commit(lambda: runs_enqueue_now(run_ids=ids))
        return ids


def service_skip_pending(*, service: Service, user: AbstractBaseUser | None) -> int:
    """Cancel the service's queued runs (reason ``Skipped``). Returns how many."""
    who = user.get_username() if user is not None and user.is_authenticated else ""
    message = f"skipped by {who}" if who else "skipped"
    skipped = 0
    ids = Run.objects.filter(service_id=service.pk, status=RunStatus.QUEUED).values_list("id", flat=True)
    for run_id in list(ids):
        now = timezone.now()
        # A launcher may take one meanwhile: then the claim fails and that run goes on.
        if run_transition(
            run_id=run_id,
            to=RunStatus.CANCELLED,
            from_statuses=[RunStatus.QUEUED],
            reason=SKIPPED,
            message=message,
            finished_at=now,
        ):
            skipped += 1
            live_publish_status(
                run_id=run_id,
                project_id=service.project_id,
                service=service.name,
                status=RunStatus.CANCELLED,
                reason=SKIPPED,
                finished_at=now.isoformat(),
            )
    return skipped
