"""Matching: globs, CEL, the in-memory trigger index and its refresh."""

from __future__ import annotations

from typing import Any

import celpy
import pytest
from django.core.exceptions import ValidationError

from k8x_core.hub.cel import cel_event
from k8x_core.hub.matching import (
    glob_match,
    trigger_clean,
    trigger_index_load,
    trigger_index_stamp,
    trigger_validate_cel,
)
from k8x_core.models import Project, Service, Trigger

from .conftest import event


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("com.acme.order.created", "com.acme.order.created", True),
        ("com.acme.order.created", "com.acme.order.created.v2", False),
        ("com.acme.order.*", "com.acme.order.created", True),
        # `*` crosses dots (documented): a prefix glob covers every sub-type.
        ("com.acme.*", "com.acme.order.created", True),
        ("com.acme.*", "com.acme", False),
        ("com.acme.order.?", "com.acme.order.x", True),
        ("com.acme.order.[ab]", "com.acme.order.c", False),
        ("Com.Acme.*", "com.acme.order", False),  # case sensitive
        ("https://github.com/*", "https://github.com/acme/repo", True),
    ],
)
def test_glob_semantics(pattern: str, value: str, expected: bool) -> None:
    assert glob_match(pattern=pattern, value=value) is expected


def test_invalid_cel_is_refused_with_the_parsers_message() -> None:
    with pytest.raises(ValueError, match=r"invalid CEL expression: Unexpected end of expression at line 1, column 19"):
        trigger_validate_cel("event.data.amount >")
    trigger_validate_cel("event.data.amount > 100 && event.source.startsWith('/shop')")
    trigger_validate_cel("")


@pytest.mark.django_db
def test_trigger_clean_refuses_invalid_cel(project: Project) -> None:
    service = Service.objects.create(project=project, name="svc", image="busybox")
    trigger = Trigger(service=service, event_type="com.acme.*", cel_expression="event.data.amount > > 3")
    with pytest.raises(ValidationError) as info:
        trigger_clean(trigger=trigger)
    assert "Unexpected token '>' at line 1, column 21" in info.value.message_dict["cel_expression"][0]
    trigger.cel_expression = "event.data.amount > 3"
    trigger_clean(trigger=trigger)


@pytest.mark.django_db
def test_index_matches_exact_glob_source_and_cel(make_service: Any) -> None:
    exact = make_service("exact", triggers=[{"event_type": "com.acme.order.created"}])
    globbed = make_service("globbed", triggers=[{"event_type": "com.acme.*"}])
    by_source = make_service("by-source", triggers=[{"event_type": "com.acme.order.created", "source_glob": "/shop/*"}])
    big = make_service(
        "big", triggers=[{"event_type": "com.acme.order.created", "cel_expression": "event.data.amount > 100"}]
    )
    make_service("inactive", active=False, triggers=[{"event_type": "com.acme.order.created"}])
    off = make_service("trigger-off", triggers=[{"event_type": "com.acme.order.created", "active": False}])
    index = trigger_index_load()

    small = event(source="/web/1", data={"amount": 5})
    assert set(index.match(event=small)) == {exact.id, globbed.id}
    large_from_shop = event(source="/shop/7", data={"amount": 500})
    assert set(index.match(event=large_from_shop)) == {exact.id, globbed.id, by_source.id, big.id}
    # CEL over a missing field is "no match", not an error.
    assert big.id not in index.match(event=event(source="/shop/7", data={"other": 1}))
    assert index.match(event=event(type="org.other.thing")) == []
    assert off.id not in index.match(event=large_from_shop)


@pytest.mark.django_db
def test_one_service_matches_once_even_with_several_triggers(make_service: Any) -> None:
    svc = make_service("multi", triggers=[{"event_type": "a.b"}, {"event_type": "a.*"}, {"event_type": "*"}])
    assert trigger_index_load().match(event=event(type="a.b")) == [svc.id]


@pytest.mark.django_db
def test_project_scoped_event_only_matches_its_projects_services(make_service: Any, project: Project) -> None:
    other = Project.objects.create(slug="other-project")
    mine = make_service("mine", triggers=[{"event_type": "x.y"}])
    theirs = make_service("theirs", proj=other, triggers=[{"event_type": "x.y"}])
    index = trigger_index_load()
    assert set(index.match(event=event(type="x.y"))) == {mine.id, theirs.id}
    assert index.match(event=event(type="x.y"), project_id=project.id) == [mine.id]


@pytest.mark.django_db
def test_stamp_changes_when_triggers_or_services_change(make_service: Any) -> None:
    svc = make_service("svc", triggers=[{"event_type": "x.y"}])
    first = trigger_index_stamp()
    assert trigger_index_stamp() == first
    trigger = Trigger.objects.create(service=svc, event_type="x.z")
    second = trigger_index_stamp()
    assert second != first
    trigger.delete()
    third = trigger_index_stamp()
    assert third != second
    svc.active = False
    svc.save()
    assert trigger_index_stamp() != third
    assert trigger_index_load().match(event=event(type="x.y")) == []


def _cel_types(value: Any) -> list[type]:
    if isinstance(value, dict):
        return [type(value)] + [t for k, v in value.items() for t in _cel_types(k) + _cel_types(v)]
    if isinstance(value, list):
        return [type(value)] + [t for v in value for t in _cel_types(v)]
    return [type(value)]


def test_the_fast_cel_conversion_gives_what_celpy_gives() -> None:
    doc = event(
        data={"amount": 950, "f": 1.5, "b": True, "n": None, "s": "x", "l": [1, "y", [2.0, False, {"k": -3}]]},
        extensions={"correlationid": "abc", "flag": True, "num": 7},
    )
    fast, reference = cel_event(doc), celpy.json_to_cel(doc)
    assert fast == reference
    assert repr(fast) == repr(reference)
    assert _cel_types(fast) == _cel_types(reference)
    assert cel_event({"x": 2**63 - 1}) == celpy.json_to_cel({"x": 2**63 - 1})
    for out_of_range in (2**63, -(2**63) - 1):
        with pytest.raises(ValueError, match="overflow"):
            celpy.json_to_cel({"x": out_of_range})
        with pytest.raises(ValueError, match="overflow"):
            cel_event({"x": out_of_range})
