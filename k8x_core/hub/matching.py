"""Which services an event triggers.

Glob semantics (event type and source): ``fnmatch.fnmatchcase`` — case
sensitive; ``*`` matches any run of characters *including* dots and slashes
(``com.acme.*`` matches ``com.acme.order.created``), ``?`` one character,
``[abc]``/``[!abc]`` a set. A pattern without any of ``*?[`` is an exact
match. An empty source glob matches every source.

CEL: the expression sees one variable, ``event``: the whole CloudEvent in
structured JSON form (``event.type``, ``event.source``, ``event.data.amount``,
extensions as top-level keys). A trigger matches only when the expression
evaluates to ``true``; an evaluation error (a missing field, a type mismatch)
is "no match", never a crash.

The hub matches against an in-memory ``TriggerIndex``; ``trigger_index_stamp``
is a cheap fingerprint of the trigger, service and project tables that the hub
polls about once a second to know when to reload the index.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import celpy
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from k8x_core.hub.cel import CelOverBudget, cel_event, cel_event_fields, cel_true, cel_validate
from k8x_core.models import Project, Service, Trigger

logger = logging.getLogger(__name__)

GLOB_CHARS = frozenset("*?[")
# Event types are few; remembering which glob triggers fit each one keeps
# matching at a dict lookup. Cleared when full rather than evicted one by one.
_TYPE_CACHE_MAX = 10_000


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


def glob_match(*, pattern: str, value: str) -> bool:
    if not is_glob(pattern):
        return pattern == value
    return fnmatchcase(value, pattern)


def trigger_validate_cel(expression: str) -> None:
    """Refuse an expression that does not compile or is over the limits (raises ValueError)."""
    cel_validate(expression)


def trigger_clean(*, trigger: Trigger) -> None:
    """Form/model validation of a trigger: raises ValidationError by field."""
    errors: dict[str, list[str]] = {}
    if not trigger.event_type.strip():
        errors.setdefault("event_type", []).append("Event type is required (exact type or glob).")
    elif trigger.event_type != trigger.event_type.strip():
        errors.setdefault("event_type", []).append("Event type must not start or end with whitespace.")
    if trigger.cel_expression:
        try:
            trigger_validate_cel(trigger.cel_expression)
        except ValueError as exc:
            errors.setdefault("cel_expression", []).append(str(exc))
    if errors:
        raise ValidationError(errors)


def triggers_cap_check(*, count: int) -> str:
    """Why ``count`` triggers are too many for one project ("" when they fit: K8X_MAX_TRIGGERS_PER_PROJECT)."""
    cap = int(settings.K8X_MAX_TRIGGERS_PER_PROJECT)
    if count > cap:
        return f"a project may have at most {cap} triggers (K8X_MAX_TRIGGERS_PER_PROJECT); this makes {count}"
    return ""


def trigger_cap_check_new(*, project_id: int) -> str:
    """Why one more trigger does not fit in the project ("" when it does)."""
    return triggers_cap_check(count=Trigger.objects.filter(service__project_id=project_id).count() + 1)


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    id: int
    service_id: int
    project_id: int
    event_type: str
    source_glob: str
    cel: celpy.Runner | None
    # The event fields ``cel`` reads (None: the whole event).
    cel_fields: frozenset[str] | None = None


def _fields_needed(candidates: list[CompiledTrigger]) -> frozenset[str] | None:
    """What the candidates' CEL filters read together (None: the whole event)."""
    needed: set[str] = set()
    for trig in candidates:
        if trig.cel is not None:
            if trig.cel_fields is None:
                return None
            needed |= trig.cel_fields
    return frozenset(needed)


@dataclass
class TriggerIndex:
    exact: dict[str, list[CompiledTrigger]] = field(default_factory=dict)
    globbed: list[CompiledTrigger] = field(default_factory=list)
    # project slug -> id (all projects); (project id, service name) -> id (active services only)
    projects: dict[str, int] = field(default_factory=dict)
    services: dict[tuple[int, str], int] = field(default_factory=dict)
    stamp: tuple[Any, ...] = ()
    # event type -> (candidate triggers, the event fields their CEL filters read)
    _by_type: dict[str, tuple[list[CompiledTrigger], frozenset[str] | None]] = field(default_factory=dict)

    def _for_type(self, event_type: str) -> tuple[list[CompiledTrigger], frozenset[str] | None]:
        found = self._by_type.get(event_type)
        if found is None:
            candidates = list(self.exact.get(event_type, ()))
            candidates.extend(t for t in self.globbed if fnmatchcase(event_type, t.event_type))
            if len(self._by_type) >= _TYPE_CACHE_MAX:
                self._by_type.clear()
            found = self._by_type[event_type] = (candidates, _fields_needed(candidates))
        return found

    def candidates(self, event_type: str) -> list[CompiledTrigger]:
        return self._for_type(event_type)[0]

    def match(self, *, event: dict[str, Any], project_id: int | None = None) -> list[int]:
        """Service ids this event triggers, in trigger order, each once."""
        candidates, cel_fields = self._for_type(str(event.get("type", "")))
        if not candidates:
            return []
        source = str(event.get("source", ""))
        matched: list[int] = []
        activation: Any = None
        for trig in candidates:
            if trig.service_id in matched:
                continue
            if project_id is not None and trig.project_id != project_id:
                continue
            if trig.source_glob and not glob_match(pattern=trig.source_glob, value=source):
                continue
            if trig.cel is not None:
                if activation is None:
                    try:
                        activation = cel_event(event, fields=cel_fields)
                    except (RecursionError, ValueError, TypeError):
                        # An event CEL cannot represent matches no CEL filter.
                        activation = False
                if activation is False or not _cel_matches(trig, activation):
                    continue
            matched.append(trig.service_id)
        return matched


# Trigger id -> when its last "over budget" was logged: a trigger over budget on
# every event is logged once a minute, and counted every time.
_over_budget_logged: dict[int, float] = {}


def _cel_matches(trig: CompiledTrigger, activation: Any) -> bool:
    assert trig.cel is not None
    try:
        return cel_true(program=trig.cel, activation_event=activation)
    except CelOverBudget:
        now = time.monotonic()
        if now - _over_budget_logged.get(trig.id, -60.0) >= 60.0:
            _over_budget_logged[trig.id] = now
            logger.warning("trigger %s: CEL evaluation over its budget; counted as no match", trig.id)
        return False


def trigger_index_stamp() -> tuple[Any, ...]:
    """A fingerprint that changes whenever a trigger, a service or a project
    is added, removed or saved (one query). ``QuerySet.update()`` bypasses
    ``auto_now``; writers that use it on triggers or services must also touch
    ``updated_at`` for the hub to notice within a second."""
    t, s, p = Trigger._meta.db_table, Service._meta.db_table, Project._meta.db_table
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {t}), (SELECT MAX(updated_at) FROM {t}), "  # noqa: S608 (table names)
        f"(SELECT COUNT(*) FROM {s}), (SELECT MAX(updated_at) FROM {s}), "
        f"(SELECT COUNT(*) FROM {p}), (SELECT MAX(id) FROM {p})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    return tuple(row) if row else ()


def trigger_index_load() -> TriggerIndex:
    """Build the index of active triggers of active services."""
    stamp = trigger_index_stamp()
    index = TriggerIndex(stamp=stamp)
    index.projects = dict(Project.objects.values_list("slug", "id"))
    for sid, project_id, name in Service.objects.filter(active=True).values_list("id", "project_id", "name"):
        index.services[(project_id, name)] = sid
    rows = (
        Trigger.objects.filter(active=True, service__active=True)
        .order_by("service_id", "id")
        .values_list("id", "service_id", "service__project_id", "event_type", "source_glob", "cel_expression")
    )
    for tid, service_id, project_id, event_type, source_glob, cel_expression in rows:
        program = None
        if cel_expression.strip():
            try:
                # The save-time limits too: an expression written past them (e.g. by raw SQL) is ignored.
                program = cel_validate(cel_expression)
            except ValueError as exc:
                # Saved past validation (e.g. a raw SQL write): it can never match.
                logger.error("trigger %s: %s; the trigger is ignored", tid, exc)
                continue
        fields = cel_event_fields(cel_expression) if program is not None else None
        trig = CompiledTrigger(tid, service_id, project_id, event_type, source_glob, program, fields)
        if is_glob(event_type):
            index.globbed.append(trig)
        else:
            index.exact.setdefault(event_type, []).append(trig)
    return index
