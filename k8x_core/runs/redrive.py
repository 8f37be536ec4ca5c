"""Bulk re-drive: one retry for each failed run of a service in a time range, never two."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from k8x_core.models import Run, RunStatus, Service
from k8x_core.runs.launch import run_rerun

# Failed in the sense of "did not succeed on its own": failed or out of time.
REDRIVABLE_STATUSES = (RunStatus.FAILED, RunStatus.TIMED_OUT)
# Runs re-driven per request; what is left is reported and goes with the next request.
REDRIVE_MAX = 1000


@dataclass
class RedriveResult:
    retries: list[Run] = field(default_factory=list)
    remaining: int = 0


def runs_redrivable(*, service: Service, since: datetime, until: datetime) -> QuerySet[Run]:
    """Failed runs of the service created in [since, until) that were neither re-driven nor retried yet."""
    if until <= since:
        raise ValueError("the end of the range must be after its start")
    already_retried = Exists(Run.objects.filter(retry_of_id=OuterRef("pk")))
    return Run.objects.filter(
        service=service,
        status__in=REDRIVABLE_STATUSES,
        created_at__gte=since,
        created_at__lt=until,
        redriven_at__isnull=True,
    ).exclude(already_retried)


def runs_redrive(*, service: Service, since: datetime, until: datetime, user: AbstractBaseUser | None) -> RedriveResult:
    """Create one retry run (like ``run_rerun``) per redrivable run, oldest first.

    Each run is claimed by setting ``redriven_at`` where it is still empty, so
    two re-drives at once (or one submitted twice) create each retry once."""
    result = RedriveResult()
    candidates = list(
        runs_redrivable(service=service, since=since, until=until)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[: REDRIVE_MAX + 1]
    )
    for pk in candidates[:REDRIVE_MAX]:
        with transaction.atomic():
            if Run.objects.filter(pk=pk, redriven_at__isnull=True).update(redriven_at=timezone.now()) != 1:
                continue
            result.retries.append(run_rerun(run_id=pk, user=user))
    if len(candidates) > REDRIVE_MAX:
        result.remaining = runs_redrivable(service=service, since=since, until=until).count()
    return result
