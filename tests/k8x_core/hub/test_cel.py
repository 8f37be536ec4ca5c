"""CEL under hostile expressions: limits at save, a budget per evaluation."""

from __future__ import annotations

import time
from typing import Any

import pytest

from k8x_core.hub.cel import CelOverBudget, cel_compile, cel_event, cel_event_fields, cel_true, cel_validate
from k8x_core.hub.loop import hub_process_batch
from k8x_core.hub.matching import trigger_index_load
from k8x_core.metrics import HUB_CEL_OVER_BUDGET
from k8x_core.models import Event, Project, Run, Trigger

from .conftest import event, message

# Each level multiplies the work by ten: five levels run for minutes in celpy.
BOMB = (
    "[0,1,2,3,4,5,6,7,8,9].all(a, [0,1,2,3,4,5,6,7,8,9].all(b, [0,1,2,3,4,5,6,7,8,9].all(c, "
    "[0,1,2,3,4,5,6,7,8,9].all(d, [0,1,2,3,4,5,6,7,8,9].all(e, a + b + c + d + e >= 0)))))"
)
# Within the save-time limits (two macros), but quadratic in the event's own data.
HEAVY = "event.data.xs.all(a, event.data.xs.all(b, a + b >= 0))"


def test_a_macro_bomb_is_refused_at_save() -> None:
    with pytest.raises(ValueError, match=r"nested 5 deep \(at most 2\)"):
        cel_validate(BOMB)
    cel_validate("event.data.items.exists(i, i.tags.exists(t, t == 'x'))")  # two levels: fine


def test_length_and_depth_are_limited(settings: Any) -> None:
    with pytest.raises(ValueError, match="too long: 2049 characters"):
        cel_validate("1 == 1 " + " " * 2042)
    with pytest.raises(ValueError, match="nested too deeply"):
        cel_validate("(" * 30 + "1" + ")" * 30 + " == 1")
    settings.K8X_CEL_MAX_LENGTH = 10
    with pytest.raises(ValueError, match=r"at most 10\)"):
        cel_validate("event.data.amount > 100")


def test_an_evaluation_stops_at_its_budget() -> None:
    program = cel_compile(HEAVY)
    activation = cel_event({"data": {"xs": list(range(3000))}})  # 9 million steps unbounded
    before = HUB_CEL_OVER_BUDGET._value.get()
    started = time.perf_counter()
    with pytest.raises(CelOverBudget):
        cel_true(program=program, activation_event=activation, budget_ms=20)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"the evaluation ran {elapsed:.2f}s past a 20 ms budget"
    assert HUB_CEL_OVER_BUDGET._value.get() == before + 1
    # The same expression on small data is an ordinary match, and the budget does not leak.
    assert cel_true(program=program, activation_event=cel_event({"data": {"xs": [1, 2, 3]}})) is True


@pytest.mark.django_db
def test_a_bomb_written_to_the_database_holds_the_hub_only_for_its_budget(
    project: Project, make_service: Any, settings: Any, queue_name: str
) -> None:
    """Written past validation (raw SQL): the index skips the bomb, and an expression
    within the limits that explodes on an event's data costs at most the budget."""
    settings.K8X_CEL_BUDGET_MS = 20
    bomb, heavy, fine = (make_service(n, triggers=[{"event_type": "com.test.any"}]) for n in ("bomb", "heavy", "fine"))
    Trigger.objects.filter(service=bomb).update(cel_expression=BOMB)
    Trigger.objects.filter(service=heavy).update(cel_expression=HEAVY)
    Trigger.objects.filter(service=fine).update(cel_expression="size(event.data.xs) > 0")
    index = trigger_index_load()
    assert all(t.service_id != bomb.pk for ts in index.exact.values() for t in ts)

    events = [event("com.test.any", data={"xs": list(range(2000))}) for _ in range(5)]
    started = time.perf_counter()
    result = hub_process_batch(messages=[message(ev, offset=i) for i, ev in enumerate(events)], index=index)
    elapsed = time.perf_counter() - started
    assert result.counts["matched"] == 5
    # Five events, each at most one 20 ms budget for the heavy trigger (plus recording).
    assert elapsed < 5 * 0.02 + 2.0, f"{elapsed:.2f}s for 5 events"
    runs = Run.objects.filter(event__ce_id__in=[e["id"] for e in events])
    assert sorted(set(runs.values_list("service__name", flat=True))) == ["fine"]
    assert Event.objects.filter(ce_id__in=[e["id"] for e in events], outcome="matched").count() == 5


@pytest.mark.parametrize(
    ("expression", "fields"),
    [
        ("event.data.amount >= 900", {"data"}),
        ("has(event.subject) && event.data.x == 1", {"subject", "data"}),
        ('event.type.startsWith("a") || event.source == "x"', {"type", "source"}),
        ('event.data.items.exists(i, i.sku == "A1")', {"data"}),
        ('"event" in event.data', {"data"}),
        # Anything that may read more than named fields converts the whole event.
        ('event["data"].a == 1', None),
        ("size(event) > 1", None),
        ('"subject" in event', None),
        ("[1].exists(event, event > 0)", None),
        ("event.data.exists(event, event == 1)", None),
        (".event.data == 1", None),
        ("event.data.event == 1", None),
        ("event == {}", None),
    ],
)
def test_fields_an_expression_reads(expression: str, fields: set[str] | None) -> None:
    assert cel_event_fields(expression) == (None if fields is None else frozenset(fields))


@pytest.mark.parametrize(
    "expression",
    [
        "event.data.amount >= 900",
        "has(event.subject)",
        "has(event.data.missing)",
        "event.data.missing == 1",
        'event.type.startsWith("com.") && event.data.tags.exists(t, t == "b")',
        "size(event) == 9",
        '"subject" in event',
        "event.correlationid == 'abc' && event.data.amount > 100",
    ],
)
def test_a_partial_event_evaluates_as_the_whole_event(expression: str) -> None:
    """Only the fields an expression reads are converted; the verdict is the same."""
    program = cel_validate(expression)
    assert program is not None
    for amount in (50, 950):
        doc = {
            "specversion": "1.0",
            "id": "1",
            "source": "/s",
            "type": "com.acme.order",
            "subject": "s-1",
            "correlationid": "abc",
            "time": "2026-01-01T00:00:00Z",
            "datacontenttype": "application/json",
            "data": {"amount": amount, "tags": ["a", "b"]},
        }
        whole = cel_true(program=program, activation_event=cel_event(doc))
        partial = cel_true(program=program, activation_event=cel_event(doc, fields=cel_event_fields(expression)))
        assert partial is whole
