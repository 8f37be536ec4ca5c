"""Run state changes. Every change is a claim: it names the statuses it moves
from, and only one writer can win it. Every status change passes here, so a
run's end is noticed here too (``k8x_core.runs.finish``: notifications)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q

from k8x_core.models import STATUS_RANK, TERMINAL_STATUSES, Run, RunStatus
from k8x_core.runs.finish import run_finished


def run_transition(
    *,
    run_id: uuid.UUID | str,
    to: RunStatus,
    from_statuses: Iterable[RunStatus] | None = None,
    **fields: Any,
) -> bool:
    """Move a run to ``to`` if it is in one of ``from_statuses`` (default: any
    status ranked below ``to``). Returns True when this call moved it."""
    if from_statuses is None:
        from_statuses = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[to]]
    allowed = [s for s in from_statuses if STATUS_RANK[s] < STATUS_RANK[to]]
    if not allowed:
        return False
    if to not in TERMINAL_STATUSES:
        return Run.objects.filter(Q(pk=run_id) & Q(status__in=allowed)).update(status=to, **fields) == 1
    # One transaction: a run never ends without its notification being marked pending.
    with transaction.atomic():
        moved = Run.objects.filter(Q(pk=run_id) & Q(status__in=allowed)).update(status=to, **fields) == 1
        if moved:
            run_finished(run_id=run_id, status=to)
    return moved
