"""Run state changes. Every change is a claim: it names the statuses it moves
from, and only one writer can win it. Every status change passes here, so a
run's end is noticed here too (``k8x_core.runs.finish``: notifications).

The claim is one plain ``UPDATE`` built once per set of field names from the
model's metadata (each value prepared by its field, as the ORM does): the
ORM's ``update()`` cost a millisecond of CPU per call, on every launch and
every status the watcher writes."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import Field, Q

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
        return _move(run_id=run_id, to=to, allowed=allowed, fields=fields)
    # One transaction: a run never ends without its notification being marked pending.
    with transaction.atomic():
        moved = _move(run_id=run_id, to=to, allowed=allowed, fields=fields)
        if moved:
            run_finished(run_id=run_id, status=to)
    return moved


def _move(*, run_id: uuid.UUID | str, to: RunStatus, allowed: list[RunStatus], fields: dict[str, Any]) -> bool:
    if any(hasattr(value, "resolve_expression") for value in fields.values()):
        # An expression (F(), Now()) is the ORM's to compile.
        return Run.objects.filter(Q(pk=run_id) & Q(status__in=allowed)).update(status=to, **fields) == 1
    return _claim(run_id=run_id, to=to, allowed=allowed, fields=fields)


def _concrete(name: str) -> Field[Any, Any]:
    field = Run._meta.get_field(name)
    if not isinstance(field, Field) or not field.concrete or field.primary_key or not field.column:
        raise ValueError(f"run_transition: {name!r} is not a column of a run")
    return field


@functools.cache
def _claim_statement(names: tuple[str, ...], statuses: int) -> tuple[str, tuple[Field[Any, Any], ...]]:
    """``UPDATE run SET status = %s, <names> = %s ... WHERE id = %s AND status IN (%s, ...)``
    and the fields whose ``get_db_prep_save`` prepares each value (plain SQL that
    PostgreSQL and the embedded SQLite both take)."""
    qn = connection.ops.quote_name
    status = _concrete("status")
    fields = tuple(_concrete(name) for name in names)
    sets = ", ".join(f"{qn(str(f.column))} = %s" for f in (status, *fields))
    pk = Run._meta.pk
    assert pk is not None and pk.column
    # Identifiers from the model's metadata, quoted; every value is a parameter.
    table = qn(Run._meta.db_table)
    marks = ", ".join(["%s"] * statuses)
    sql = f"UPDATE {table} SET {sets} WHERE {qn(pk.column)} = %s AND {qn(str(status.column))} IN ({marks})"  # noqa: S608
    return sql, fields


def _claim(*, run_id: uuid.UUID | str, to: RunStatus, allowed: list[RunStatus], fields: dict[str, Any]) -> bool:
    names = tuple(sorted(fields))
    sql, model_fields = _claim_statement(names, len(allowed))
    params: list[Any] = [str(to)]
    params += [
        field.get_db_prep_save(fields[name], connection) for name, field in zip(names, model_fields, strict=True)
    ]
    pk = Run._meta.pk
    assert pk is not None
    params += [pk.get_db_prep_value(run_id, connection), *(str(s) for s in allowed)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.rowcount == 1)
