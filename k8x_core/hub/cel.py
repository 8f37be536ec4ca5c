"""CEL for trigger filters: compiling with limits, the event as CEL values, and
evaluation within a budget.

A project's expression is untrusted. At save it must be short
(K8X_CEL_MAX_LENGTH), shallow (K8X_CEL_MAX_DEPTH parse-tree levels) and nest
comprehension macros (``all``, ``exists``, ``exists_one``, ``map``, ``filter``)
at most K8X_CEL_MAX_MACRO_NESTING deep: each nested level multiplies the work
(a few hundred characters of nested macros evaluate for hours). At match time
each evaluation has a budget of K8X_CEL_BUDGET_MS: over it, the evaluation is
abandoned and counts as "no match", so one trigger can never stall the hub.

The budget is enforced where the time goes: every comprehension step creates a
nested ``Activation`` (celpy 0.5, transpiled and interpreted alike), so that is
where the clock is read. Without comprehensions an expression's work is bounded
by its length; ``matches()`` uses RE2 (linear time).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import celpy
import celpy.evaluation
import lark
from django.conf import settings

from k8x_core.metrics import HUB_CEL_OVER_BUDGET

logger = logging.getLogger(__name__)

# The transpiling runner (CEL -> Python code object) evaluates ~4x faster than
# the tree-walking interpreter; the interpreter is the fallback for anything
# the transpiler cannot handle.
_cel_env = celpy.Environment(runner_class=celpy.CompiledRunner)
_cel_env_interpreted = celpy.Environment()
# celpy logs every evaluation error (e.g. a field an event does not have) at
# ERROR; for a trigger that is an ordinary "no match".
logging.getLogger("celpy").setLevel(logging.CRITICAL)

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_TOKEN_RE = re.compile(r"Token\('([^']*)', '((?:[^'\\]|\\.)*)'\)")
# The clock is read every this many comprehension steps (a step costs
# microseconds in celpy; a clock read tens of nanoseconds).
_CHECK_EVERY = 16


class CelOverBudget(Exception):
    """An evaluation ran past K8X_CEL_BUDGET_MS."""


class _Budget(threading.local):
    deadline: float | None = None
    steps: int = 0
    exceeded: bool = False


_budget = _Budget()
_nested_activation = celpy.evaluation.Activation.nested_activation


def _nested_activation_within_budget(self: Any, *args: Any, **kwargs: Any) -> Any:
    deadline = _budget.deadline
    if deadline is not None:
        if _budget.exceeded:
            raise CelOverBudget
        _budget.steps += 1
        if _budget.steps % _CHECK_EVERY == 0 and time.perf_counter() > deadline:
            _budget.exceeded = True
            raise CelOverBudget
    return _nested_activation(self, *args, **kwargs)


# celpy has no evaluation limit of its own; this is the one hook every
# comprehension step passes through. It does nothing unless an evaluation on
# this thread has a budget (``cel_true``).
celpy.evaluation.Activation.nested_activation = _nested_activation_within_budget  # type: ignore[method-assign]


_int_type_new = celpy.celtypes.IntType.__new__
_INT64_LOW, _INT64_HIGH = -(2**63), 2**63


def _int_type_new_fast(cls: Any, source: Any, *args: Any, **kwargs: Any) -> Any:
    # celpy's IntType(int) wraps a new overflow-checking function on every call
    # (~20 us: every CEL integer literal and arithmetic result pays it). For an
    # exact int this is the same check and the same value.
    if type(source) is int:
        if _INT64_LOW <= source < _INT64_HIGH:
            return int.__new__(cls, source)
        raise ValueError("overflow")
    return _int_type_new(cls, source, *args, **kwargs)


celpy.celtypes.IntType.__new__ = _int_type_new_fast  # type: ignore[method-assign]


def _cel_parse_message(exc: Exception) -> str:
    """The parser's own words: lark's first line (what and where), then
    celpy's excerpt of the expression with a caret under the spot."""
    detail = str(exc.__context__ or "").strip().splitlines()
    what = detail[0] if detail else ""
    what = _TOKEN_RE.sub(lambda m: "end of expression" if m[1] == "$END" else repr(m[2]), what)
    what = what.replace("token end of expression", "end of expression")
    excerpt = str(exc).rstrip("\n")
    return f"{what}\n{excerpt}" if what else excerpt


def _tree_depth(tree: lark.Tree) -> int:
    depth, level = 0, [(tree, 1)]
    while level:
        node, d = level.pop()
        depth = max(depth, d)
        level.extend((c, d + 1) for c in node.children if isinstance(c, lark.Tree))
    return depth


def _macro_nesting(tree: lark.Tree) -> int:
    """How deep comprehension macros nest (``a.all(x, b.exists(y, …))`` is 2)."""

    def is_macro(node: lark.Tree) -> bool:
        if node.data != "member_dot_arg":
            return False
        return any(isinstance(c, lark.Token) and str(c) in MACROS for c in node.children)

    deepest, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if is_macro(node):
            depth += 1
            deepest = max(deepest, depth)
        stack.extend((c, depth) for c in node.children if isinstance(c, lark.Tree))
    return deepest


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


def cel_validate(expression: str) -> celpy.Runner | None:
    """The compiled expression (None when empty); ValueError with the reason when it
    does not compile or is over the limits. The one rule for every way a trigger is
    saved or loaded."""
    if not expression.strip():
        return None
    limit = settings.K8X_CEL_MAX_LENGTH
    if len(expression) > limit:
        raise ValueError(f"CEL expression too long: {len(expression)} characters (at most {limit})")
    try:
        ast = _cel_env_interpreted.compile(expression)
    except RecursionError:
        raise ValueError(f"CEL expression nested too deeply (at most {settings.K8X_CEL_MAX_DEPTH} levels)") from None
    except Exception as exc:
        raise ValueError(f"invalid CEL expression: {_cel_parse_message(exc)}") from exc
    depth = _tree_depth(ast)
    if depth > settings.K8X_CEL_MAX_DEPTH:
        raise ValueError(f"CEL expression nested too deeply: {depth} levels (at most {settings.K8X_CEL_MAX_DEPTH})")
    nesting = _macro_nesting(ast)
    if nesting > settings.K8X_CEL_MAX_MACRO_NESTING:
        raise ValueError(
            f"CEL macros (all, exists, exists_one, map, filter) nested {nesting} deep "
            f"(at most {settings.K8X_CEL_MAX_MACRO_NESTING}): each level multiplies the work"
        )
    return cel_compile(expression)


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


def cel_event(event: dict[str, Any], *, fields: frozenset[str] | None = None) -> Any:
    """The event as the CEL variable ``event``: all of it, or only ``fields``
    (its top-level keys an expression reads, ``cel_event_fields``). Converting
    is most of a simple filter's cost, and most filters read ``data`` only."""
    if fields is None:
        return _json_to_cel(event)
    return _json_to_cel({k: event[k] for k in fields if k in event})


def _is_event_ident(node: Any) -> bool:
    """``member -> primary -> ident 'event'``: the bare variable."""
    for kind in ("member", "primary", "ident"):
        if not isinstance(node, lark.Tree) or node.data != kind or len(node.children) != 1:
            return False
        node = node.children[0]
    return isinstance(node, lark.Token) and str(node) == "event"


def cel_event_fields(expression: str) -> frozenset[str] | None:
    """The top-level event fields an expression reads, when it reads the event
    only as ``event.<name>...``; None when it may read more (``size(event)``,
    ``event["x"]``, ``"x" in event``, a macro variable named ``event``, or a
    field named ``event`` anywhere): then the whole event is converted. The
    evaluation sees the same values for every name it reads either way."""
    if not expression.strip():
        return None
    try:
        tree = _cel_env_interpreted.compile(expression)
    except Exception:
        return None
    fields: set[str] = set()
    reads = 0
    for node in tree.iter_subtrees():
        if node.data == "member_dot" and len(node.children) == 2 and _is_event_ident(node.children[0]):
            name = node.children[1]
            if isinstance(name, lark.Token):
                fields.add(str(name))
                reads += 1
    # Every token spelled ``event`` must be one of those reads.
    mentions = sum(1 for token in tree.scan_values(lambda v: isinstance(v, lark.Token)) if str(token) == "event")
    return frozenset(fields) if mentions == reads else None


# The module globals celpy's transpiled code runs in (``base_activation`` and
# ``CEL`` are set and read there, as ``Transpiler.evaluate`` does).
_transpiled_globals = celpy.evaluation.result.__globals__


def _evaluate(program: celpy.Runner, context: dict[str, Any]) -> Any:
    """``program.evaluate(context)`` without its cost per call: celpy's
    ``Transpiler.evaluate`` deep-copies the environment's whole name table
    (every type and function name) before loading the one variable, about two
    thirds of an evaluation's time here. A nested activation (what celpy
    itself makes for each comprehension step) holds the variable and looks
    everything else up in the unchanged environment: the same names, the same
    values. Interpreted programs (the transpiler's fallback) go the usual way."""
    transpiler = getattr(program, "tp", None)
    if not isinstance(program, celpy.CompiledRunner) or transpiler is None:
        return program.evaluate(context)
    # The original method, not the budget hook: this is not a comprehension step.
    activation = _nested_activation(transpiler.base_activation, vars=context)
    # The transpiled code reads a variable as ``activation.event``; celpy's
    # ``Activation.__getattr__`` resolves it through the name table on every
    # read (~30 us). As an instance attribute it is the same value, found
    # directly; comprehension steps still resolve through the table (their
    # own nested activations), so a macro variable named like it still wins.
    for name, value in context.items():
        if not hasattr(celpy.evaluation.Activation, name):
            vars(activation)[name] = value
    _transpiled_globals["base_activation"] = activation
    exec(transpiler.executable_code, _transpiled_globals)  # noqa: S102 (celpy's own compiled CEL, as celpy runs it)
    value = _transpiled_globals["CEL"]
    if isinstance(value, celpy.evaluation.CELEvalError):
        raise value
    return value


def cel_true(*, program: celpy.Runner, activation_event: Any, budget_ms: float | None = None) -> bool:
    """Whether the expression is ``true`` for the event. An evaluation error and
    an evaluation over its budget (default K8X_CEL_BUDGET_MS) are "no match"."""
    budget = settings.K8X_CEL_BUDGET_MS if budget_ms is None else budget_ms
    _budget.deadline, _budget.steps, _budget.exceeded = time.perf_counter() + budget / 1000, 0, False
    try:
        result = _evaluate(program, {"event": activation_event})
    except Exception:  # evaluation errors are "no match"
        result = None
    finally:
        _budget.deadline = None
    if _budget.exceeded:
        HUB_CEL_OVER_BUDGET.inc()
        raise CelOverBudget
    # celpy returns errors as values in some paths instead of raising them.
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)
