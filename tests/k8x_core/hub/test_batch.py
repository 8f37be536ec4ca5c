"""hub_process_batch against the real database and Redis (messages built in
process; the Kafka side is covered in test_kafka.py)."""

from __future__ import annotations

from typing import Any

import pytest

from k8x_core.hub import loop as hub_module
from k8x_core.hub.loop import hub_process_batch
from k8x_core.hub.matching import trigger_index_load
from k8x_core.models import Event, EventOutcome, Project, Run, RunStatus, TriggerKind

from .conftest import event, message, queued_run_ids, structured

pytestmark = pytest.mark.django_db(transaction=True)


def process(*messages: Any) -> hub_module.BatchResult:
    return hub_process_batch(messages=list(messages), index=trigger_index_load())


def test_one_event_two_services_two_runs_queued(make_service: Any, queue_name: str) -> None:
    a = make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    b = make_service("b", triggers=[{"event_type": "com.acme.order.*"}])
    ev = event(extensions={"correlationid": "flow-1"})
    result = process(message(ev))
    assert result.counts == {"matched": 1}
    stored = Event.objects.get(ce_id=ev["id"])
    assert stored.outcome == EventOutcome.MATCHED
    assert stored.payload == ev
    assert stored.correlation_id == "flow-1"
    runs = Run.objects.filter(event=stored)
    assert {r.service_id for r in runs} == {a.id, b.id}
    assert all(r.status == RunStatus.QUEUED and r.trigger_kind == TriggerKind.EVENT for r in runs)
    assert all(r.correlation_id == "flow-1" for r in runs)
    # The launches are in the RQ queue once the transaction committed.
    assert queued_run_ids(queue_name) == {str(r.id) for r in runs}
    assert result.enqueued


def test_non_matching_event_is_unmatched_with_a_new_correlation_id(make_service: Any, queue_name: str) -> None:
    make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    ev = event(type="org.other.thing")
    assert process(message(ev)).counts == {"unmatched": 1}
    stored = Event.objects.get(ce_id=ev["id"])
    assert stored.outcome == EventOutcome.UNMATCHED
    assert stored.reason == "no active trigger matches"
    assert len(stored.correlation_id) == 32
    assert not Run.objects.exists()


def test_same_event_twice_gives_one_set_of_runs_and_a_duplicate(make_service: Any, queue_name: str) -> None:
    make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    make_service("b", triggers=[{"event_type": "com.acme.order.created"}])
    ev = event()
    process(message(ev, offset=0))
    # Redelivered in a later batch, and twice within one batch.
    result = process(message(ev, offset=0), structured(ev, offset=1))
    assert result.counts == {"duplicate": 2}
    original = Event.objects.get(ce_id=ev["id"], outcome=EventOutcome.MATCHED)
    dups = Event.objects.filter(ce_id=ev["id"], outcome=EventOutcome.DUPLICATE)
    assert dups.count() == 2
    assert all(d.duplicate_of_id == original.id for d in dups)
    assert all(d.correlation_id == original.correlation_id for d in dups)
    assert Run.objects.filter(event__ce_id=ev["id"]).count() == 2


def test_same_event_twice_in_one_batch_first_wins(make_service: Any, queue_name: str) -> None:
    make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    ev = event()
    result = process(message(ev, offset=0), message(ev, offset=1))
    assert result.counts == {"matched": 1, "duplicate": 1}
    original = Event.objects.get(outcome=EventOutcome.MATCHED)
    assert original.kafka_offset == 0
    assert Event.objects.get(outcome=EventOutcome.DUPLICATE).duplicate_of_id == original.id
    assert Run.objects.count() == 1


def test_cel_filter_true_and_false(make_service: Any, queue_name: str) -> None:
    big = make_service(
        "big", triggers=[{"event_type": "com.acme.order.created", "cel_expression": "event.data.amount > 100"}]
    )
    yes = event(data={"amount": 150})
    no = event(data={"amount": 50})
    result = process(message(yes), message(no, offset=1))
    assert result.counts == {"matched": 1, "unmatched": 1}
    assert Run.objects.filter(event__ce_id=yes["id"]).count() == 1
    assert Run.objects.get().service_id == big.id
    assert Event.objects.get(ce_id=no["id"]).outcome == EventOutcome.UNMATCHED


def test_project_scoped_event_and_unknown_project(make_service: Any, project: Project, queue_name: str) -> None:
    other = Project.objects.create(slug="other")
    mine = make_service("mine", triggers=[{"event_type": "x.y"}])
    make_service("theirs", proj=other, triggers=[{"event_type": "x.y"}])
    scoped = event(type="x.y", extensions={"k8xproject": project.slug})
    unknown = event(type="x.y", extensions={"k8xproject": "no-such-project"})
    result = process(message(scoped), message(unknown, offset=1))
    assert result.counts == {"matched": 1, "rejected": 1}
    assert [r.service_id for r in Run.objects.all()] == [mine.id]
    assert Event.objects.get(ce_id=scoped["id"]).project_id == project.id
    rejected = Event.objects.get(ce_id=unknown["id"])
    assert rejected.outcome == EventOutcome.REJECTED
    assert rejected.reason == "unknown project 'no-such-project' in extension 'k8xproject'"
    assert result.rejects[0][1] == rejected.reason


def test_schedule_event_runs_exactly_its_service(make_service: Any, project: Project, queue_name: str) -> None:
    due = make_service("nightly")
    make_service("listener", triggers=[{"event_type": "*"}])  # a catch-all must not fire on schedule ticks
    make_service("paused", active=False)
    tick = event(
        type="k8x.schedule", source="/k8x/scheduler", extensions={"k8xservice": "nightly", "k8xproject": project.slug}
    )
    paused = event(
        type="k8x.schedule", source="/k8x/scheduler", extensions={"k8xservice": "paused", "k8xproject": project.slug}
    )
    result = process(message(tick), message(paused, offset=1))
    assert result.counts == {"matched": 1, "unmatched": 1}
    run = Run.objects.get()
    assert (run.service_id, run.trigger_kind) == (due.id, TriggerKind.SCHEDULE)
    assert Event.objects.get(ce_id=paused["id"]).reason == "no active service 'paused' in the event's project"


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ([], b'{"hello": "world"}', "not a CloudEvent: no ce_* headers"),
        ([("content-type", b"application/cloudevents+json")], b"{not json", "body is not valid JSON"),
        (
            [("content-type", b"application/cloudevents+json")],
            b'{"specversion": "1.0", "id": "1", "type": "t"}',
            "missing required attribute 'source'",
        ),
        ([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s")], b"", "missing required attribute 'type'"),
        (
            [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s"), ("ce_type", b"t")],
            b"x" * 2_000_000,
            "over the limit of",
        ),
        (
            [("content-type", b"application/cloudevents+json")],
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"a\\u0000b"}',
            "NUL character",
        ),
        # Binary mode: what the hub only serialises when it stores the event is still checked on every one.
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"/s"),
                ("ce_type", b"t"),
                ("content-type", b"application/json"),
            ],
            b'{"t":"a\\u0000b"}',
            "NUL character",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"/s"),
                ("ce_type", b"t"),
                ("ce_subject", b"a\x00b"),
            ],
            b"",
            "NUL character",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"/s"),
                ("ce_type", b"t"),
                ("content-type", b"application/json"),
            ],
            b'{"t":"\xed\xa0\x80"}',
            "not valid Unicode",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"/s"),
                ("ce_type", b"t"),
                ("content-type", b"text/plain; charset=utf-7"),
            ],
            b"+AAA-",
            "NUL character",
        ),
        (
            [("content-type", b"application/cloudevents+json")],
            b"[" * 100_000 + b"]" * 100_000,
            "body is JSON nested too deeply",
        ),
        (
            [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s" * 300), ("ce_type", b"t")],
            b"",
            "attribute 'source' is longer than 512 characters",
        ),
    ],
)
def test_invalid_messages_are_rejected_with_their_reason(
    headers: list[tuple[str, bytes]], value: bytes, reason: str, make_service: Any, queue_name: str
) -> None:
    good = event()
    make_service("a", triggers=[{"event_type": good["type"]}])
    result = process(message(headers=headers, value=value, offset=7), message(good, offset=8))
    # The reject does not stop the rest of the batch.
    assert result.counts == {"rejected": 1, "matched": 1}
    rejected = Event.objects.get(outcome=EventOutcome.REJECTED)
    assert reason in rejected.reason
    assert (rejected.kafka_partition, rejected.kafka_offset) == (0, 7)
    assert result.rejects[0][0].offset == 7
    assert reason in result.rejects[0][1]
    assert Run.objects.count() == 1


def test_escaped_backslash_u0000_text_is_not_a_nul(make_service: Any, queue_name: str) -> None:
    ev = event(data={"text": "C:\\u0000 is just text"})
    assert process(message(ev)).counts == {"unmatched": 1}
    assert Event.objects.get(ce_id=ev["id"]).payload["data"]["text"] == "C:\\u0000 is just text"


def test_redis_down_keeps_runs_queued_in_the_database(make_service: Any, settings: Any, queue_name: str) -> None:
    make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    settings.RQ_QUEUES = {queue_name: {"URL": "redis://127.0.0.1:1/0"}}  # nothing listens there
    ev = event()
    result = process(message(ev))
    assert result.counts == {"matched": 1}
    assert not result.enqueued
    run = Run.objects.get()
    assert run.status == RunStatus.QUEUED
    assert str(run.id) in {str(r) for r in result.run_ids}


def test_concurrent_writer_conflict_is_retried_as_duplicates(
    make_service: Any, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another hub records the same event between our lookup and our insert:
    the unique index refuses ours, and the retried batch sees a duplicate."""
    make_service("a", triggers=[{"event_type": "com.acme.order.created"}])
    ev = event()
    process(message(ev))  # the "other hub"
    real = hub_module._existing
    calls: list[int] = []

    def stale_first(keys: Any) -> Any:
        calls.append(1)
        return {} if len(calls) == 1 else real(keys)

    monkeypatch.setattr(hub_module, "_existing", stale_first)
    result = process(message(ev, offset=1))
    assert len(calls) == 2
    assert result.counts == {"duplicate": 1}
    assert Run.objects.count() == 1
    assert Event.objects.filter(outcome=EventOutcome.MATCHED).count() == 1
