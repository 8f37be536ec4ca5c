"""Run state changes. Every change is a claim: it names the statuses it moves
from, and only one writer can win it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from k8x_core.models import STATUS_RANK, Run, RunStatus


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
    return Run.objects.filter(Q(pk=run_id) & Q(status__in=allowed)).update(status=to, **fields) == 1
