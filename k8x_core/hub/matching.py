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
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import celpy
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from k8x_core.models import Project, Service, Trigger

logger = logging.getLogger(__name__)

GLOB_CHARS = frozenset("*?[")
# Event types are few; remembering which glob triggers fit each one keeps
# matching at a dict lookup. Cleared when full rather than evicted one by one.
_TYPE_CACHE_MAX = 10_000

# The transpiling runner (CEL -> Python code object) evaluates ~4x faster than
# the tree-walking interpreter; the interpreter is the fallback for anything
# the transpiler cannot handle.
_cel_env = celpy.Environment(runner_class=celpy.CompiledRunner)
_cel_env_interpreted = celpy.Environment()
# celpy logs every evaluation error (e.g. a field an event does not have) at
# ERROR; for a trigger that is an ordinary "no match".
logging.getLogger("celpy").setLevel(logging.CRITICAL)


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


def glob_match(*, pattern: str, value: str) -> bool:
    if not is_glob(pattern):
        return pattern == value
    return fnmatchcase(value, pattern)


_TOKEN_RE = re.compile(r"Token\('([^']*)', '((?:[^'\\]|\\.)*)'\)")


def _cel_parse_message(exc: Exception) -> str:
    """The parser's own words: lark's first line (what and where), then
    celpy's excerpt of the expression with a caret under the spot."""
    detail = str(exc.__context__ or "").strip().splitlines()
    what = detail[0] if detail else ""
    what = _TOKEN_RE.sub(lambda m: "end of expression" if m[1] == "$END" else repr(m[2]), what)
    what = what.replace("token end of expression", "end of expression")
    excerpt = str(exc).rstrip("\n")
    return f"{what}\n{excerpt}" if what else excerpt


def cel_compile(expression: str) -> celpy.Runner:
    """Compile a CEL expression; ValueError carries the parser's message."""
    try:
        ast = _cel_env.compile(expression)
    except Exception as exc:  # celpy raises CELParseError and, for some inputs, lark errors
        raise ValueError(f"invalid CEL expression: {_cel_parse_message(exc)}") from exc
    try:
        return _cel_env.program(ast)
    except Exception:
        logger.info("CEL expression not transpiled, interpreting it: %r", expression)
    try:
        return _cel_env_interpreted.program(_cel_env_interpreted.compile(expression))
    except Exception as exc:
        raise ValueError(f"invalid CEL expression: {_cel_parse_message(exc)}") from exc


def trigger_validate_cel(expression: str) -> None:
    """Refuse an expression that does not compile (raises ValueError)."""
    if expression.strip():
        cel_compile(expression)


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


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_str_new = str.__new__
_int_new = int.__new__
_StringType = celpy.celtypes.StringType
_IntType = celpy.celtypes.IntType
_MapType = celpy.celtypes.MapType
_ListType = celpy.celtypes.ListType


def _json_to_cel(value: Any) -> Any:
    """``celpy.json_to_cel`` for what ``json.loads`` returns, ~4x faster: it
    dispatches on the exact type and builds the CEL values directly (celpy's
    ``IntType(int)`` wraps a new overflow-checking function on every call).
    The values are the same; anything unusual goes to celpy's own."""
    t = type(value)
    if t is str:
        return _str_new(_StringType, value)
    if t is dict:
        out = _MapType()
        for k, v in value.items():
            # MapType does not override __setitem__; the key is a JSON string.
            out[_str_new(_StringType, k) if type(k) is str else celpy.json_to_cel(k)] = _json_to_cel(v)
        return out
    if t is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return _int_new(_IntType, value)
        raise ValueError("overflow")
    if t is list:
        return _ListType([_json_to_cel(v) for v in value])
    return celpy.json_to_cel(value)


def cel_event(event: dict[str, Any]) -> Any:
    return _json_to_cel(event)


def cel_true(*, program: celpy.Runner, activation_event: Any) -> bool:
    try:
        result = program.evaluate({"event": activation_event})
    except Exception:  # evaluation errors are "no match"
        return False
    # celpy returns errors as values in some paths instead of raising them.
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    id: int
    service_id: int
    project_id: int
    event_type: str
    source_glob: str
    cel: celpy.Runner | None


@dataclass
class TriggerIndex:
    exact: dict[str, list[CompiledTrigger]] = field(default_factory=dict)
    globbed: list[CompiledTrigger] = field(default_factory=list)
    # project slug -> id (all projects); (project id, service name) -> id (active services only)
    projects: dict[str, int] = field(default_factory=dict)
    services: dict[tuple[int, str], int] = field(default_factory=dict)
    stamp: tuple[Any, ...] = ()
    _by_type: dict[str, list[CompiledTrigger]] = field(default_factory=dict)

    def candidates(self, event_type: str) -> list[CompiledTrigger]:
        found = self._by_type.get(event_type)
        if found is None:
            found = list(self.exact.get(event_type, ()))
            found.extend(t for t in self.globbed if fnmatchcase(event_type, t.event_type))
            if len(self._by_type) >= _TYPE_CACHE_MAX:
                self._by_type.clear()
            self._by_type[event_type] = found
        return found

    def match(self, *, event: dict[str, Any], project_id: int | None = None) -> list[int]:
        """Service ids this event triggers, in trigger order, each once."""
        candidates = self.candidates(str(event.get("type", "")))
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
                        activation = cel_event(event)
                    except (RecursionError, ValueError, TypeError):
                        # An event CEL cannot represent matches no CEL filter.
                        activation = False
                if activation is False or not cel_true(program=trig.cel, activation_event=activation):
                    continue
            matched.append(trig.service_id)
        return matched


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
                program = cel_compile(cel_expression)
            except ValueError as exc:
                # Saved past validation (e.g. a raw SQL write): it can never match.
                logger.error("trigger %s: %s; the trigger is ignored", tid, exc)
                continue
        trig = CompiledTrigger(tid, service_id, project_id, event_type, source_glob, program)
        if is_glob(event_type):
            index.globbed.append(trig)
        else:
            index.exact.setdefault(event_type, []).append(trig)
    return index
