"""The hub: Kafka events in, Event rows and queued Runs out.

One consumed batch is one database transaction:

1. decode every message (``k8x_core.events.ce``) and match it against the in-memory
   ``TriggerIndex`` (no query per event);
2. one query finds which (project, source, id) keys of matched events are
   already recorded;
3. in one transaction: bulk insert the Event rows (``matched``, ``duplicate``,
   ``rejected`` and a bounded sample of ``unmatched``: ``k8x_core.hub.unmatched``,
   which also counts every unmatched event per (project, type)) and one
   ``queued`` Run per matched service, and register the launch enqueue for
   after the commit;
4. dead-letter the rejects, then commit the Kafka offsets.

Exactly one run per (event, service): the partial unique index on
(source, ce_id, project) for matched events is the guard (per
project: one project's event never makes another's a duplicate; events
without a project share one key space, NULL counted as equal). A concurrent hub
inserting the same event makes our insert fail (after theirs commits); the
batch is then rolled back and recorded again, and the second pass sees those
events as duplicates.

If Redis is down when the transaction commits, the runs stay ``queued`` in the
database, the offsets are committed anyway, and the reconciler
(``worker.reconcile``) enqueues them later.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection, models, transaction
from django.db.models import Model
from django.utils import timezone

from k8x_core.events.ce import (
    EXT_CORRELATION_ID,
    EXT_PROJECT,
    EXT_SERVICE,
    CloudEventInvalid,
    ce_correlation_id,
    ce_from_kafka,
    ce_is_json_media,
    ce_new_correlation_id,
    ce_time_parse,
)
from k8x_core.events.reserved import source_reserved_problem
from k8x_core.hub.matching import TriggerIndex, trigger_index_load, trigger_index_stamp
from k8x_core.hub.unmatched import unmatched_count, unmatched_prune, unmatched_sample_pick
from k8x_core.kafka.consumer import DeadLetterProducer, DeadLetterUnavailable, HubConsumer, HubMessage
from k8x_core.metrics import HUB_BATCH_SECONDS, HUB_EVENTS, HUB_LAG, HUB_RUNS_QUEUED
from k8x_core.models import Event, EventOutcome, Project, Run, RunStatus, TriggerKind
from k8x_core.runs.queue import runs_enqueue

logger = logging.getLogger(__name__)

SCHEDULE_EVENT_TYPE = "k8x.schedule"
_INTEGRITY_RETRIES = 5

# Column widths of models.Event: an attribute longer than its column is a
# reject with a clear reason, never a failed batch.
_ATTR_LIMITS = {
    "id": Event._meta.get_field("ce_id").max_length,
    "source": Event._meta.get_field("source").max_length,
    "type": Event._meta.get_field("type").max_length,
    "subject": Event._meta.get_field("subject").max_length,
    "datacontenttype": Event._meta.get_field("datacontenttype").max_length,
}
_CORRELATION_MAX = Event._meta.get_field("correlation_id").max_length or 64


# json.dumps writes NUL as \u0000; an escaped backslash before "u0000" is text.
_NUL_ESCAPE_RE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class EventRejected(ValueError):
    pass


# (project id or None, source, id): what makes an event a redelivery.
EventKey = tuple[int | None, str, str]


@dataclass(slots=True)
class Decoded:
    message: HubMessage
    event: dict[str, Any]
    project_id: int | None
    # The event's own, else "" until it is stored (``_event_row`` makes one up then).
    correlation_id: str
    size: int
    # JSON text and its UTF-8 size; "" and -1 until needed (``_payload``).
    payload_json: str

    @property
    def key(self) -> EventKey:
        # Per project: another project's event with the same source and id is
        # not a redelivery of this one (and must not pre-empt it).
        return (self.project_id, self.event["source"], self.event["id"])


@dataclass(slots=True)
class Rejected:
    message: HubMessage
    reason: str
    event: dict[str, Any] | None = None


@dataclass
class BatchResult:
    counts: Counter[str] = field(default_factory=Counter)
    run_ids: list[uuid.UUID] = field(default_factory=list)
    rejects: list[tuple[HubMessage, str]] = field(default_factory=list)
    enqueued: bool = True

    def merge(self, other: BatchResult) -> None:
        self.counts.update(other.counts)
        self.run_ids.extend(other.run_ids)
        self.rejects.extend(other.rejects)
        self.enqueued = self.enqueued and other.enqueued


# --- decoding -------------------------------------------------------------------


def _project_id(slug: Any, *, index: TriggerIndex) -> int:
    slug = str(slug)
    pid = index.projects.get(slug)
    if pid is None:
        # Rare (a project created within the last second): ask the database.
        pid = Project.objects.filter(slug=slug).values_list("id", flat=True).first()
        if pid is None:
            raise EventRejected(f"unknown project {slug!r} in extension '{EXT_PROJECT}'")
        index.projects[slug] = pid
    return pid


def hub_decode(message: HubMessage, *, index: TriggerIndex) -> Decoded | Rejected:
    """A Kafka message as an event ready to record, or the reason it is not."""
    try:
        event = ce_from_kafka(message.headers, message.value)
    except CloudEventInvalid as exc:
        return Rejected(message, exc.message)
    except Exception as exc:
        # Whatever a message makes the decoder do (e.g. RecursionError on
        # absurdly nested JSON), it must never stop the hub.
        logger.warning(
            "message %s/%s/%s not decodable", message.topic, message.partition, message.offset, exc_info=True
        )
        return Rejected(message, f"message could not be decoded: {type(exc).__name__}: {exc}")
    try:
        for name, limit in _ATTR_LIMITS.items():
            value = event.get(name)
            if isinstance(value, str) and limit and len(value) > limit:
                raise EventRejected(f"attribute '{name}' is longer than {limit} characters")
        # PostgreSQL text and jsonb refuse NUL characters and lone surrogates.
        if _plainly_storable(message, event):
            # Serialised only if it is stored (most unmatched events never are).
            text, size = "", -1
        else:
            text, size = _payload_checked(event)
        correlation = ce_correlation_id(event)
        if len(correlation) > _CORRELATION_MAX:
            raise EventRejected(f"extension '{EXT_CORRELATION_ID}' is longer than {_CORRELATION_MAX} characters")
        project_id = _project_id(event[EXT_PROJECT], index=index) if event.get(EXT_PROJECT) else None
        if project_id is None and source_reserved_problem(source=event.get("source")):
            # Only K8X's producers use k8x/ sources, and they always scope them.
            raise EventRejected(
                f"{source_reserved_problem(source=event.get('source'))}; accepted only with extension '{EXT_PROJECT}'"
            )
    except (EventRejected, CloudEventInvalid) as exc:
        return Rejected(message, str(exc), event)
    except (ValueError, TypeError, RecursionError) as exc:
        return Rejected(message, f"event could not be processed: {type(exc).__name__}: {exc}", event)
    # ``time`` was validated by ce_from_kafka; it is parsed (and a missing
    # correlation id made up) only for the events that are stored.
    return Decoded(message, event, project_id, correlation, size, text)


def _payload_checked(event: dict[str, Any]) -> tuple[str, int]:
    """The event as stored (JSON text) and its size; EventRejected if it
    holds what PostgreSQL refuses (NUL, lone surrogates)."""
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text and _NUL_ESCAPE_RE.search(text):
        raise EventRejected("event contains a NUL character (\\u0000), which cannot be stored")
    try:
        size = len(text.encode())
    except UnicodeEncodeError as exc:
        raise EventRejected(f"event contains text that is not valid Unicode: {exc.reason}") from exc
    return text, size


def _plainly_storable(message: HubMessage, event: dict[str, Any]) -> bool:
    """True when the decoded event cannot hold a NUL or a lone surrogate: no
    NUL byte anywhere, no ``\\u`` escape and strict UTF-8 in the value, and
    data parsed as JSON (or absent). Anything else takes the full check."""
    value = message.value or b""
    if b"\\u" in value or b"\x00" in value or "data_base64" in event:
        return False
    content_type = event.get("datacontenttype")
    if content_type is not None and not ce_is_json_media(content_type):
        return False
    if b"\x00" in b"".join([v for _name, v in message.headers]):
        return False
    try:
        # json.loads decodes bytes with "surrogatepass": UTF-8-encoded surrogates would get through.
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _payload(item: Decoded) -> tuple[str, int]:
    if item.size < 0:
        item.payload_json, item.size = _payload_checked(item.event)
    return item.payload_json, item.size


# --- matching -------------------------------------------------------------------


def hub_match(item: Decoded, *, index: TriggerIndex) -> tuple[list[int], str, str]:
    """(service ids, trigger kind, reason when unmatched)."""
    event = item.event
    if event["type"] == SCHEDULE_EVENT_TYPE and event.get(EXT_SERVICE):
        name = str(event[EXT_SERVICE])
        if item.project_id is None:
            return [], TriggerKind.SCHEDULE, f"schedule event for {name!r} without extension '{EXT_PROJECT}'"
        sid = index.services.get((item.project_id, name))
        if sid is None:
            return [], TriggerKind.SCHEDULE, f"no active service {name!r} in the event's project"
        return [sid], TriggerKind.SCHEDULE, ""
    services = index.match(event=event, project_id=item.project_id)
    return services, TriggerKind.EVENT, "" if services else "no active trigger matches"


# --- recording ------------------------------------------------------------------


def _clean_text(value: Any, limit: int | None) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8", "replace")
    return text[:limit] if limit else text


# Rows are dicts of attname -> value; JSON columns hold JSON text already
# (hub_decode serialised the event once), so neither path dumps twice.
Row = dict[str, Any]


def _rejected_project_id(item: Rejected, *, index: TriggerIndex) -> int | None:
    """The project a rejected message was sent for, when it says: the event's
    ``k8xproject``, else the binary-mode header ``ce_k8xproject``, else the
    structured JSON value's. The bridge set it from the sending credential, so
    the reject shows on that project's Events page."""
    slug: Any = (item.event or {}).get(EXT_PROJECT)
    if not slug:
        wanted = f"ce_{EXT_PROJECT}"
        slug = next(
            (raw.decode("utf-8", "replace") for name, raw in item.message.headers if name.lower() == wanted), ""
        )
    if not slug and item.message.value and item.message.value[:1] == b"{":
        try:
            body = json.loads(item.message.value)
        except (ValueError, RecursionError):
            body = None
        slug = body.get(EXT_PROJECT) if isinstance(body, dict) else ""
    if not slug or not isinstance(slug, str):
        return None
    try:
        return _project_id(slug, index=index)
    except EventRejected:
        return None


def _rejected_row(item: Rejected, *, now: datetime, project_id: int | None = None) -> Row:
    msg = item.message
    attrs: dict[str, Any] = dict(item.event or {})
    if not attrs:
        # Best effort, for the console: whatever ce_* headers there were.
        for name, raw in msg.headers:
            if name.lower().startswith("ce_"):
                attrs[name.lower()[3:]] = raw.decode("utf-8", "replace")
    preview: dict[str, Any] = {
        "headers": {_clean_text(k, 100): _clean_text(v.decode("utf-8", "replace"), 500) for k, v in msg.headers[:50]},
        "value": _clean_text((msg.value or b"")[:2048].decode("utf-8", "replace"), None),
    }
    return {
        "ce_id": _clean_text(attrs.get("id"), _ATTR_LIMITS["id"]),
        "source": _clean_text(attrs.get("source"), _ATTR_LIMITS["source"]),
        "type": _clean_text(attrs.get("type"), _ATTR_LIMITS["type"]),
        "subject": _clean_text(attrs.get("subject"), _ATTR_LIMITS["subject"]),
        "time": None,
        "datacontenttype": "",
        "payload": json.dumps({"rejected_message": preview}),
        "correlation_id": "",
        "outcome": EventOutcome.REJECTED.value,
        "reason": _clean_text(item.reason, 2000),
        "project_id": project_id,
        "duplicate_of_id": None,
        "kafka_topic": msg.topic,
        "kafka_partition": msg.partition,
        "kafka_offset": msg.offset,
        "size_bytes": msg.size,
        "received_at": now,
    }


def _event_row(item: Decoded, *, outcome: str, now: datetime, reason: str = "", duplicate_of: int | None = None) -> Row:
    ev = item.event
    payload, size = _payload(item)
    if not item.correlation_id:
        item.correlation_id = ce_new_correlation_id()
    return {
        "ce_id": ev["id"],
        "source": ev["source"],
        "type": ev["type"],
        "subject": ev.get("subject", ""),
        "time": ce_time_parse(ev["time"]) if "time" in ev else None,
        "datacontenttype": ev.get("datacontenttype", ""),
        "payload": payload,
        "correlation_id": item.correlation_id,
        "outcome": outcome,
        "reason": reason,
        "project_id": item.project_id,
        "duplicate_of_id": duplicate_of,
        "kafka_topic": item.message.topic,
        "kafka_partition": item.message.partition,
        "kafka_offset": item.message.offset,
        "size_bytes": size,
        "received_at": now,
    }


def _uuid4s(count: int) -> Iterator[uuid.UUID]:
    """``count`` random (version 4) UUIDs from one os.urandom call: uuid4()
    makes a getrandom syscall per id, a visible cost at ~10k ids/s here."""
    pool = os.urandom(16 * count)
    for start in range(0, 16 * count, 16):
        yield uuid.UUID(bytes=pool[start : start + 16], version=4)


def _run_row(
    *, run_id: uuid.UUID, service_id: int, event_id: int, kind: str, correlation_id: str, now: datetime
) -> Row:
    return {
        "id": run_id,
        "service_id": service_id,
        "event_id": event_id,
        "trigger_kind": kind,
        "correlation_id": correlation_id,
        "status": RunStatus.QUEUED.value,
        "created_at": now,
        "updated_at": now,
    }


class _Copier:
    """COPY ... FROM STDIN for one model: the fastest way into PostgreSQL.
    Columns the hub does not set get the model field's default, prepared once,
    so a field added to the model later is still filled in."""

    def __init__(self, model: type[Model], *, json_text: bool = True) -> None:
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields]
        self.sql = "COPY {} ({}) FROM STDIN".format(
            connection.ops.quote_name(model._meta.db_table),
            ", ".join(connection.ops.quote_name(f.column or f.attname) for f in self.fields),
        )
        self.defaults: dict[str, Any] = {}
        for f in self.fields:
            if f.primary_key:
                self.defaults[f.attname] = None
                continue
            value = f.get_default()
            if isinstance(f, models.JSONField):
                value = json.dumps(value)
            self.defaults[f.attname] = value
        self.attnames = [f.attname for f in self.fields]

    def copy(self, rows: list[Row]) -> None:
        if not rows:
            return
        defaults, attnames = self.defaults, self.attnames
        with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(self.sql) as copy:
            for row in rows:
                copy.write_row([row[a] if a in row else defaults[a] for a in attnames])


_copiers: dict[type[Model], _Copier] = {}


def _pg_copy(model: type[Model], rows: list[Row]) -> None:
    copier = _copiers.get(model)
    if copier is None:
        copier = _copiers[model] = _Copier(model)
    copier.copy(rows)


def _pg_next_ids(model: type[Model], count: int) -> list[int]:
    """Primary keys for rows about to be copied in (one round trip)."""
    if not count:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, model._meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def _orm_insert(model: type[Model], rows: list[Row]) -> list[Any]:
    """The portable path (SQLite in the embedded mode): bulk_create."""
    objs = []
    for row in rows:
        row = dict(row)
        if model is Event:
            row["payload"] = json.loads(row["payload"])
        objs.append(model(**row))
    model.objects.bulk_create(objs)  # type: ignore[attr-defined]
    return [o.pk for o in objs]


def _existing(keys: set[EventKey]) -> dict[EventKey, tuple[int, str]]:
    """Already-recorded originals: (project, source, id) -> (pk, correlation
    id). The two IN lists are index conditions on the leading (source, ce_id)
    columns of the unique index; the exact keys are picked out here."""
    if not keys:
        return {}
    if connection.vendor == "postgresql":
        # Two array parameters instead of two IN lists of a parameter per
        # value: the ORM spends ~10 us per event compiling those.
        table = connection.ops.quote_name(Event._meta.db_table)
        sql = (
            f"SELECT id, project_id, source, ce_id, correlation_id FROM {table} "  # noqa: S608 (table name only)
            f"WHERE source = ANY(%s) AND ce_id = ANY(%s) AND outcome = '{EventOutcome.MATCHED.value}'"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    list({s for _, s, _ in keys}),
                    list({i for _, _, i in keys}),
                ],
            )
            return {(p, s, i): (pk, cid) for pk, p, s, i, cid in cursor.fetchall() if (p, s, i) in keys}
    rows = Event.objects.filter(
        source__in={s for _, s, _ in keys},
        ce_id__in={i for _, _, i in keys},
        outcome=EventOutcome.MATCHED,
    ).values_list("id", "project_id", "source", "ce_id", "correlation_id")
    return {(p, s, i): (pk, cid) for pk, p, s, i, cid in rows if (p, s, i) in keys}


def _record(decoded: list[Decoded], rejected: list[Rejected], *, index: TriggerIndex) -> BatchResult:
    result = BatchResult()
    matched: list[tuple[Decoded, list[int], str]] = []
    unmatched: list[tuple[Decoded, str]] = []
    for d in decoded:
        services, kind, reason = hub_match(d, index=index)
        if services:
            matched.append((d, services, kind))
        else:
            unmatched.append((d, reason))
    # Only a matched event can be a redelivery that matters (it would run again).
    existing = _existing({d.key for d, _s, _k in matched})
    dups: list[Decoded] = []
    seen: set[EventKey] = set()
    new_rows: list[Row] = []
    plans: list[tuple[list[int], str]] = []
    now = timezone.now()
    for d, services, kind in matched:
        if d.key in existing or d.key in seen:
            dups.append(d)
        else:
            seen.add(d.key)
            new_rows.append(_event_row(d, outcome=EventOutcome.MATCHED.value, now=now))
            plans.append((services, kind))
    per_type = settings.K8X_HUB_UNMATCHED_SAMPLE
    sample_rows = [
        _event_row(d, outcome=EventOutcome.UNMATCHED.value, reason=reason, now=now)
        for d, reason in unmatched_sample_pick(
            unmatched, per_type=per_type, window_seconds=settings.K8X_HUB_UNMATCHED_SAMPLE_SECONDS
        )
    ]
    postgres = connection.vendor == "postgresql"

    committed = False

    def _mark_committed() -> None:
        nonlocal committed
        committed = True

    try:
        with transaction.atomic():
            # Registered first, so it runs before the enqueue hook: an
            # exception after it is Redis's, not the database's.
            transaction.on_commit(_mark_committed)
            if postgres:
                # Ids for every event row of the batch (originals, duplicates, rejects).
                event_ids = iter(_pg_next_ids(Event, len(new_rows) + len(dups) + len(rejected) + len(sample_rows)))
                for row in new_rows:
                    row["id"] = next(event_ids)
            else:
                for row, pk in zip(new_rows, _orm_insert(Event, new_rows), strict=True):
                    row["id"] = pk
            originals = {(r["project_id"], r["source"], r["ce_id"]): (r["id"], r["correlation_id"]) for r in new_rows}
            later_rows: list[Row] = []
            for d in dups:
                original_pk, original_cid = existing.get(d.key) or originals[d.key]
                # A redelivery belongs to the original's flow.
                d.correlation_id = original_cid or d.correlation_id
                later_rows.append(
                    _event_row(
                        d,
                        outcome=EventOutcome.DUPLICATE.value,
                        reason="already received",
                        duplicate_of=original_pk,
                        now=now,
                    )
                )
            later_rows.extend(
                _rejected_row(r, now=now, project_id=_rejected_project_id(r, index=index)) for r in rejected
            )
            later_rows.extend(sample_rows)
            runs: list[Row] = []
            run_ids = _uuid4s(sum(len(services) for services, _kind in plans))
            for row, (services, kind) in zip(new_rows, plans, strict=True):
                for sid in services:
                    runs.append(
                        _run_row(
                            run_id=next(run_ids),
                            service_id=sid,
                            event_id=row["id"],
                            kind=kind,
                            correlation_id=row["correlation_id"],
                            now=now,
                        )
                    )
            if postgres:
                for row in later_rows:
                    row["id"] = next(event_ids)
                _pg_copy(Event, new_rows + later_rows)
                _pg_copy(Run, runs)
            else:
                _orm_insert(Event, later_rows)
                _orm_insert(Run, runs)
            unmatched_count(items=unmatched, now=now)
            if sample_rows:
                types = sorted({(r["project_id"], r["type"]) for r in sample_rows}, key=lambda k: (k[0] or 0, k[1]))
                unmatched_prune(types=types, per_type=per_type)
            result.run_ids = [r["id"] for r in runs]
            runs_enqueue(run_ids=result.run_ids)
    except Exception as exc:
        if not committed:
            raise
        # The runs are safely queued in the database; the reconciler will
        # enqueue them. Offsets must not wait for Redis.
        logger.warning("%s runs recorded but not enqueued (the reconciler will): %s", len(result.run_ids), exc)
        result.enqueued = False
    if new_rows:
        result.counts[str(EventOutcome.MATCHED)] += len(new_rows)
    if unmatched:
        result.counts[str(EventOutcome.UNMATCHED)] += len(unmatched)
    if dups:
        result.counts[str(EventOutcome.DUPLICATE)] += len(dups)
    if rejected:
        result.counts[str(EventOutcome.REJECTED)] += len(rejected)
    result.rejects = [(r.message, r.reason) for r in rejected]
    return result


def _is_unique_violation(exc: IntegrityError) -> bool:
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "unique" in str(exc).lower()


def _record_with_retry(decoded: list[Decoded], rejected: list[Rejected], *, index: TriggerIndex) -> BatchResult:
    for attempt in range(1, _INTEGRITY_RETRIES + 1):
        try:
            return _record(decoded, rejected, index=index)
        except IntegrityError as exc:
            # Another hub recorded some of these events first (rebalance,
            # replicas): record again, they are duplicates now.
            if attempt == _INTEGRITY_RETRIES or not _is_unique_violation(exc):
                raise
            logger.info("batch conflicted with a concurrent writer, recording it again: %s", exc)
    raise AssertionError("unreachable")


def hub_process_batch(*, messages: Sequence[HubMessage], index: TriggerIndex) -> BatchResult:
    """Decode, match and record one batch in one transaction.

    Raises OperationalError/InterfaceError when the database is unreachable:
    the caller retries the same batch. Any other database error (a value the
    database refuses) is isolated to its message, which is then rejected."""
    decoded: list[Decoded] = []
    rejected: list[Rejected] = []
    for m in messages:
        item = hub_decode(m, index=index)
        (decoded if isinstance(item, Decoded) else rejected).append(item)  # type: ignore[arg-type]
    try:
        return _record_with_retry(decoded, rejected, index=index)
    except (OperationalError, InterfaceError):
        raise
    except DatabaseError as exc:
        if len(messages) > 1:
            logger.warning("batch refused by the database (%s); recording its messages one by one", exc)
            result = BatchResult()
            for m in messages:
                result.merge(hub_process_batch(messages=[m], index=index))
            return result
        reason = f"the database refused the event: {exc}".strip()
        items = [Rejected(d.message, reason, d.event) for d in decoded] + rejected
        return _record_with_retry([], items, index=index)


# --- the loop -------------------------------------------------------------------


def _db_reset() -> None:
    with contextlib.suppress(DatabaseError):
        connection.close()


class Hub:
    """The consumer loop, one ``step`` at a time (the management command and
    the tests drive it). ``stop()`` (SIGTERM) lets the current batch finish."""

    def __init__(
        self,
        *,
        consumer: HubConsumer,
        dead_letters: DeadLetterProducer,
        batch_size: int = 500,
        poll_timeout: float = 0.5,
        index_refresh_seconds: float = 1.0,
        lag_seconds: float = 5.0,
        max_backoff: float = 10.0,
    ) -> None:
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.index_refresh_seconds = index_refresh_seconds
        self.lag_seconds = lag_seconds
        self.max_backoff = max_backoff
        self.stopping = False
        self.index: TriggerIndex | None = None
        self._index_checked = 0.0
        self._lag_checked = 0.0

    def stop(self) -> None:
        self.stopping = True

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))

    def refresh_index(self, *, force: bool = False) -> None:
        """Reload the trigger index if the tables changed (checked at most
        every ``index_refresh_seconds``)."""
        now = time.monotonic()
        if not force and self.index is not None and now - self._index_checked < self.index_refresh_seconds:
            return
        self._index_checked = now
        try:
            if self.index is None or force or trigger_index_stamp() != self.index.stamp:
                self.index = trigger_index_load()
                logger.info(
                    "trigger index loaded: %s exact types, %s globs",
                    len(self.index.exact),
                    len(self.index.globbed),
                )
        except DatabaseError as exc:
            logger.warning("trigger index refresh failed (keeping the last one): %s", exc)
            _db_reset()

    def _ensure_index(self) -> TriggerIndex:
        delay = 0.5
        while self.index is None:
            self.refresh_index(force=True)
            if self.index is None:
                if self.stopping:
                    raise DatabaseError("stopping before the trigger index could be loaded")
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        return self.index

    def process(self, messages: list[HubMessage]) -> BatchResult | None:
        """Record a batch, retrying while the database is away. None when
        asked to stop before it could be recorded (nothing is committed)."""
        delay = 0.5
        while True:
            try:
                index = self._ensure_index()
                return hub_process_batch(messages=messages, index=index)
            except (OperationalError, InterfaceError) as exc:
                logger.warning("database unavailable, retrying the batch in %.1f s: %s", delay, exc)
            except DatabaseError as exc:
                if self.stopping:
                    return None
                logger.warning("database error, retrying the batch in %.1f s: %s", delay, exc)
            _db_reset()
            if self.stopping:
                return None
            self._sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    def dead_letter(self, rejects: list[tuple[HubMessage, str]]) -> bool:
        delay = 0.5
        while True:
            try:
                self.dead_letters.send(rejects)
                return True
            except DeadLetterUnavailable as exc:
                logger.warning("dead-letter topic unavailable, retrying in %.1f s: %s", delay, exc)
            if self.stopping:
                return False
            self._sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    def step(self) -> BatchResult | None:
        self.refresh_index()
        messages = self.consumer.poll_batch(max_messages=self.batch_size, timeout=self.poll_timeout)
        if not messages:
            self._update_lag()
            return None
        started = time.perf_counter()
        result = self.process(messages)
        if result is None:
            return None
        # Rejects are on the dead-letter topic before their offsets move on.
        if result.rejects and not self.dead_letter(result.rejects):
            return None
        self.consumer.commit(messages)
        HUB_BATCH_SECONDS.observe(time.perf_counter() - started)
        for outcome, n in result.counts.items():
            HUB_EVENTS.labels(outcome=outcome).inc(n)
        if result.enqueued:
            HUB_RUNS_QUEUED.inc(len(result.run_ids))
        self._update_lag()
        return result

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_checked < self.lag_seconds:
            return
        self._lag_checked = now
        for (topic, partition), lag in self.consumer.lag().items():
            HUB_LAG.labels(topic=topic, partition=str(partition)).set(lag)

    def run(self) -> None:
        while not self.stopping:
            self.step()
        self.close()

    def close(self) -> None:
        self.dead_letters.close()
        self.consumer.close()


def hub_create(*, topics: Sequence[str] | None = None, group: str | None = None) -> Hub:
    topics = list(topics or [settings.K8X_EVENTS_TOPIC])
    return Hub(
        consumer=HubConsumer(topics=topics, group=group or settings.K8X_HUB_GROUP),
        dead_letters=DeadLetterProducer(topic=settings.K8X_DLQ_TOPIC),
        batch_size=settings.K8X_HUB_BATCH_SIZE,
    )
