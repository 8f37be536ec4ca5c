"""What the hub keeps of events that match no trigger.

On a shared bus most events match nothing; writing each as a full Event row
made an unmatched event cost as much as a matched one. Per batch the hub now:

- counts them per (project, type) in ``UnmatchedCount``: one upsert statement,
  rows in key order (two hubs never wait on each other in a cycle);
- keeps a bounded sample as ordinary ``unmatched`` Event rows: each (project,
  type) may write ``K8X_HUB_UNMATCHED_SAMPLE`` rows per
  ``K8X_HUB_UNMATCHED_SAMPLE_SECONDS`` (the newest of a batch first), and the
  table keeps the newest ``K8X_HUB_UNMATCHED_SAMPLE`` per (project, type), so
  the console's Events page filtered on ``unmatched`` ("why didn't my service
  run?") shows recent ones with their payload and reason; a quiet type keeps
  every event. The sample rows go into the batch's one COPY; one DELETE per
  batch prunes the (project, type)s that got new rows back to the bound.

An unmatched event is not a redelivery guard: an unmatched redelivery creates
no run, so it is counted (and maybe sampled) again, never ``duplicate``. The
unique (project, source, id) index covers ``matched`` events only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import F

from k8x_core.models import Event, EventOutcome, Run, UnmatchedCount

if TYPE_CHECKING:
    from k8x_core.hub.loop import Decoded

# (project id or None, type)
TypeKey = tuple[int | None, str]


def _type_key(item: Decoded) -> TypeKey:
    return (item.project_id, str(item.event["type"]))


# (project, type) -> (start of its current window, sample rows written in it).
# Cleared when full rather than evicted one by one, like the type cache.
_windows: dict[TypeKey, tuple[float, int]] = {}
_WINDOWS_MAX = 10_000


def unmatched_sample_pick(
    items: Sequence[tuple[Decoded, str]], *, per_type: int, window_seconds: float, now: float | None = None
) -> list[tuple[Decoded, str]]:
    """The unmatched events of a batch to keep as sample rows: per (project,
    type) at most ``per_type`` per ``window_seconds`` (this process's budget),
    the newest of the batch first, one per event key; in batch order.

    Writing the newest ``per_type`` of every batch would write (and prune)
    most events when many types share a bus (20 types x 20 rows = 400 of a
    500-event batch); a budget per window bounds the writes at
    types x per_type per window, and a quiet type still keeps every event."""
    if per_type <= 0 or not items:
        return []
    clock = time.monotonic() if now is None else now
    if len(_windows) >= _WINDOWS_MAX:
        _windows.clear()
    left: dict[TypeKey, int] = {}
    keys: set[tuple[int | None, str, str]] = set()
    picked: list[tuple[Decoded, str]] = []
    for item in reversed(items):
        d = item[0]
        tk = _type_key(d)
        budget = left.get(tk)
        if budget is None:
            started, used = _windows.get(tk, (clock, 0))
            if clock - started >= window_seconds:
                started, used = clock, 0
            _windows[tk] = (started, used)
            budget = left[tk] = per_type - used
        if budget <= 0 or d.key in keys:
            continue
        left[tk] = budget - 1
        keys.add(d.key)
        picked.append(item)
    for tk, budget in left.items():
        started, _used = _windows[tk]
        _windows[tk] = (started, per_type - budget)
    picked.reverse()
    return picked


def unmatched_sample_reset() -> None:
    """Forget the sampling windows (tests; a process starts with none)."""
    _windows.clear()


def unmatched_count(*, items: Sequence[tuple[Decoded, str]], now: datetime) -> None:
    """Add this batch's unmatched events to ``UnmatchedCount`` (one statement)."""
    counts = Counter(_type_key(d) for d, _reason in items)
    if not counts:
        return
    ordered = sorted(counts.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1]))
    table = connection.ops.quote_name(UnmatchedCount._meta.db_table)
    sql = (
        f"INSERT INTO {table} (project_id, type, count, first_seen_at, last_seen_at) "  # noqa: S608 (table name only)
        "SELECT u.p, u.t, u.c, %s, %s FROM unnest(%s::bigint[], %s::text[], %s::bigint[]) AS u(p, t, c) "
        f"ON CONFLICT (COALESCE(project_id, 0), type) DO UPDATE SET count = {table}.count + EXCLUDED.count, "
        "last_seen_at = EXCLUDED.last_seen_at"
    )
    if connection.vendor != "postgresql":
        # The portable path (SQLite in the embedded mode): one upsert per type.
        for (project_id, type_), n in ordered:
            changed = UnmatchedCount.objects.filter(project=project_id, type=type_).update(
                count=F("count") + n, last_seen_at=now
            )
            if not changed:
                UnmatchedCount.objects.create(
                    project_id=project_id, type=type_, count=n, first_seen_at=now, last_seen_at=now
                )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [now, now, [k[0] for k, _ in ordered], [k[1] for k, _ in ordered], [n for _, n in ordered]],
        )


def unmatched_prune(*, types: Sequence[TypeKey], per_type: int) -> None:
    """Delete sampled unmatched Event rows beyond the newest ``per_type`` of
    each given (project, type). Rows something still points at (a run, a
    duplicate recorded before this policy) stay."""
    if not types:
        return
    ev = connection.ops.quote_name(Event._meta.db_table)
    run = connection.ops.quote_name(Run._meta.db_table)
    # Candidates by type through the partial index; the (project, type) pairs are picked out after.
    sql = (
        f"DELETE FROM {ev} e WHERE e.id IN ("  # noqa: S608 (table names only)
        "SELECT id FROM (SELECT id, project_id, type, row_number() OVER "
        "(PARTITION BY type, COALESCE(project_id, 0) ORDER BY id DESC) AS rn "
        f"FROM {ev} WHERE outcome = '{EventOutcome.UNMATCHED.value}' AND type = ANY(%s)) ranked "
        "WHERE rn > %s AND (COALESCE(project_id, 0), type) IN (SELECT * FROM unnest(%s::bigint[], %s::text[])))"
        f" AND NOT EXISTS (SELECT 1 FROM {run} r WHERE r.event_id = e.id)"
        f" AND NOT EXISTS (SELECT 1 FROM {ev} d WHERE d.duplicate_of_id = e.id)"
    )
    if connection.vendor != "postgresql":
        for project_id, type_ in types:
            group = Event.objects.filter(outcome=EventOutcome.UNMATCHED, project=project_id, type=type_)
            newest = list(group.order_by("-id").values_list("id", flat=True)[:per_type])
            group.exclude(id__in=newest).filter(runs__isnull=True).delete()
        return
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                sorted({t for _, t in types}),
                per_type,
                [p or 0 for p, _ in types],
                [t for _, t in types],
            ],
        )
