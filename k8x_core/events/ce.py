"""CloudEvents 1.0: validation and conversion between the HTTP binding, the
Kafka binding and the structured JSON form. Pure functions, no I/O.

The one internal representation of an event is its *structured JSON form*: a
dict holding the context attributes, the extensions and either ``data`` (any
JSON value) or ``data_base64`` (binary data), exactly as
``application/cloudevents+json`` would carry it. ``time`` stays the RFC 3339
string it was sent as.

Validation is K8X's own, with messages that name the attribute in plain words.
Its rules include every rule of the ``cloudevents`` SDK's ``CloudEvent`` (and
are stricter on extensions), so the SDK's check is not run a second time on
every event: ``tests/k8x_core/events/test_ce_sdk.py`` holds both to that on a
set of good and bad events.

Extensions K8X itself reads (all lowercase alnum, per the spec's naming rule):

- ``correlationid``: the flow id. The bridge sets a new uuid4 hex when an event
  arrives without one, and a run's token carries the run's id into the events
  that run emits, so one flow can be followed end to end.
- ``partitionkey``: the Kafka message key, if present (else ``subject``, else
  ``source``), so the events of one subject stay in order.
- ``k8xproject``: the slug of the project whose API key, webhook or run token
  brought the event in; such an event may only trigger that project's
  services. ``k8xservice``: set by the scheduler on ``k8x.schedule`` events to
  name the one service that is due.
  Every extension whose name starts with ``k8x`` is RESERVED: the edge adapters
  strip whatever a client sent under those names (``ce_scope``) before setting
  their own, so a client cannot claim another project or a service it does not
  own. Producers writing to Kafka directly (e.g. ``kcat``) are trusted as the
  platform itself: Kafka access is an operator's credential.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson
from cloudevents.core.v1.event import CloudEvent as SdkCloudEvent
from django.conf import settings

SPECVERSION = "1.0"
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
OPTIONAL_ATTRIBUTES = ("datacontenttype", "dataschema", "subject", "time")
DATA_KEYS = ("data", "data_base64")

EXT_CORRELATION_ID = "correlationid"
EXT_PARTITION_KEY = "partitionkey"
EXT_PROJECT = "k8xproject"
EXT_SERVICE = "k8xservice"
RESERVED_EXTENSION_PREFIX = "k8x"

CONTENT_TYPE_STRUCTURED = "application/cloudevents+json"
CONTENT_TYPE_BATCH = "application/cloudevents-batch+json"
CONTENT_TYPE_JSON = "application/json"

# The spec: lowercase letters and digits, and SHOULD be at most 20 long; K8X
# enforces both, so names survive every binding (HTTP headers, Kafka headers).
EXTENSION_NAME_RE = re.compile(r"^[a-z0-9]{1,20}$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
JSON_MEDIA_RE = re.compile(r"^(application|text)/([a-z0-9!#$&^_.+-]+\+)?json$")
# Text data (XML, plain text, CSV...) stays text: services get it as a string
# (``K8X_PARAMS`` is then a JSON string), never as base64 or ``{}``.
TEXT_MEDIA_RE = re.compile(r"^(text/[a-z0-9!#$&^_.+-]+|application/xml|application/[a-z0-9!#$&^_.+-]+\+xml)$")

KAFKA_CE_PREFIX = "ce_"
HTTP_CE_PREFIX = "ce-"


class CloudEventInvalid(ValueError):
    """An event (or message) that is not a valid CloudEvent 1.0.

    ``field`` names the attribute or part that is wrong; ``status`` is the HTTP
    status an edge adapter answers with."""

    status = 400

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class CloudEventUnsupportedMedia(CloudEventInvalid):
    """The content type is not one of the CloudEvents modes K8X reads."""

    status = 415


class CloudEventTooLarge(CloudEventInvalid):
    status = 413


# --- attributes ---------------------------------------------------------------


def ce_json_parse(body: bytes | str, *, what: str = "body", field: str = "body") -> Any:
    """JSON from a client: every way it can be wrong is a CloudEventInvalid
    (400) naming ``what`` and the problem, never a server error. Nesting is
    bounded (K8X_MAX_JSON_DEPTH), so code that walks the value recursively
    later (serialising, matching) cannot run out of stack."""
    try:
        value = _json_loads(body)
    except UnicodeDecodeError as exc:
        raise CloudEventInvalid(f"{what} is not valid UTF-8 (byte {exc.start}: {exc.reason})", field=field) from None
    except RecursionError:
        raise CloudEventInvalid(f"{what} is JSON nested too deeply", field=field) from None
    except ValueError as exc:
        raise CloudEventInvalid(f"{what} is not valid JSON: {exc}", field=field) from None
    limit = int(settings.K8X_MAX_JSON_DEPTH)
    # Containers cannot nest deeper than the opening brackets in the text: the
    # walk is only needed when there are more of those than the limit.
    if _opening_brackets(body) > limit and _json_deeper_than(value, limit):
        raise CloudEventInvalid(f"{what} is JSON nested deeper than {limit} levels", field=field)
    return value


# orjson reads an integer beyond 64 bits as a float (a silent change of value);
# a run of 19 or more digits anywhere may be one, so json reads that text.
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")
_LONG_DIGITS_STR = re.compile(r"[0-9]{19}")


def _json_loads(body: bytes | str) -> Any:
    """``json.loads``, ~6x faster for what nearly every event is. orjson accepts
    a subset of what json does (no NaN, no BOM, UTF-8 only, no lone
    surrogates): whatever it refuses, json reads, so the same texts are
    accepted with the same values and json's own error messages."""
    digits = _LONG_DIGITS_BYTES if type(body) is bytes else _LONG_DIGITS_STR
    if digits.search(body) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def _opening_brackets(text: bytes | str) -> int:
    if isinstance(text, str):
        return text.count("{") + text.count("[")
    return text.count(b"{") + text.count(b"[")


def _json_deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` (iterative: no recursion
    for a hostile document; later code that recurses stays within the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


# Content types repeat (a few per topic); decoding reads each several times per
# event. Short ones only, and cleared when full: a sender cannot grow it.
_MEDIA_CACHE: dict[str, str] = {}
_MEDIA_CACHE_MAX, _MEDIA_CACHE_KEY_MAX = 256, 200


def ce_media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    if not content_type:
        return ""
    media = _MEDIA_CACHE.get(content_type)
    if media is None:
        media = content_type.split(";", 1)[0].strip().lower()
        if len(content_type) <= _MEDIA_CACHE_KEY_MAX:
            if len(_MEDIA_CACHE) >= _MEDIA_CACHE_MAX:
                _MEDIA_CACHE.clear()
            _MEDIA_CACHE[content_type] = media
    return media


def ce_is_json_media(content_type: str | None) -> bool:
    return bool(JSON_MEDIA_RE.match(ce_media_type(content_type)))


def ce_time_parse(value: str) -> datetime:
    """An RFC 3339 timestamp (as CloudEvents requires) to an aware datetime."""
    if not isinstance(value, str) or not RFC3339_RE.match(value):
        raise CloudEventInvalid(
            f"attribute 'time' must be an RFC 3339 timestamp such as 2024-01-31T12:00:00Z, got {value!r}",
            field="time",
        )
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise CloudEventInvalid(f"attribute 'time' is not a valid date and time: {exc}", field="time") from exc
    return parsed


def ce_time_format(value: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC with a ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ce_validate(attrs: Any) -> None:
    """Raise CloudEventInvalid (naming the attribute) unless ``attrs`` is a
    valid CloudEvent 1.0 in structured JSON form."""
    # type() first: the ABC check is slow and nearly every event is a plain dict.
    if type(attrs) is not dict and not isinstance(attrs, Mapping):
        raise CloudEventInvalid(
            f"an event must be a JSON object, got {type(attrs).__name__}",
            field="event",
        )
    if "specversion" not in attrs:
        raise CloudEventInvalid("missing required attribute 'specversion'", field="specversion")
    if attrs["specversion"] != SPECVERSION:
        raise CloudEventInvalid(
            f"unsupported specversion {attrs['specversion']!r}: K8X accepts CloudEvents '1.0'",
            field="specversion",
        )
    for name in ("id", "source", "type"):
        if name not in attrs:
            raise CloudEventInvalid(f"missing required attribute '{name}'", field=name)
        if not isinstance(attrs[name], str) or not attrs[name]:
            raise CloudEventInvalid(f"attribute '{name}' must be a non-empty string", field=name)
    for name in ("subject", "dataschema", "datacontenttype"):
        if name in attrs and (not isinstance(attrs[name], str) or not attrs[name]):
            raise CloudEventInvalid(f"attribute '{name}' must be a non-empty string when present", field=name)
    if "time" in attrs:
        ce_time_parse(attrs["time"])
    if "data" in attrs and "data_base64" in attrs:
        raise CloudEventInvalid("an event carries either 'data' or 'data_base64', not both", field="data_base64")
    if "data_base64" in attrs:
        _b64decode(attrs["data_base64"])
    for name, value in attrs.items():
        if name in REQUIRED_ATTRIBUTES or name in OPTIONAL_ATTRIBUTES or name in DATA_KEYS:
            continue
        if not EXTENSION_NAME_RE.match(name):
            raise CloudEventInvalid(
                f"extension attribute name {name!r} is invalid: use 1 to 20 lowercase letters or digits",
                field=name,
            )
        if isinstance(value, bool | int | str):
            continue
        raise CloudEventInvalid(
            f"extension attribute '{name}' must be a string, integer or boolean, got {type(value).__name__}",
            field=name,
        )


def _b64decode(value: Any) -> bytes:
    if not isinstance(value, str):
        raise CloudEventInvalid("'data_base64' must be a base64 string", field="data_base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CloudEventInvalid(f"'data_base64' is not valid base64: {exc}", field="data_base64") from exc


def ce_normalize(attrs: Any) -> dict[str, Any]:
    """Validate and return a plain copy; a JSON ``null`` attribute means absent
    (CloudEvents JSON format), so those keys are dropped first."""
    if type(attrs) is dict or isinstance(attrs, Mapping):
        attrs = {k: v for k, v in attrs.items() if v is not None or k == "data"}
        if attrs.get("data", 0) is None:
            del attrs["data"]
    ce_validate(attrs)
    return dict(attrs)


def ce_to_sdk(event: Mapping[str, Any]) -> SdkCloudEvent:
    """The ``cloudevents`` SDK object for a structured JSON event."""
    attributes = {k: v for k, v in event.items() if k not in DATA_KEYS}
    if isinstance(attributes.get("time"), str):
        attributes["time"] = ce_time_parse(attributes["time"])
    data: Any = None
    if "data_base64" in event:
        data = _b64decode(event["data_base64"])
    elif "data" in event:
        data = event["data"]
    return SdkCloudEvent(attributes, data)


def ce_data_bytes(event: Mapping[str, Any]) -> bytes:
    """The event's data as it travels in a binary-mode body or Kafka value."""
    if "data_base64" in event:
        return _b64decode(event["data_base64"])
    if "data" not in event:
        return b""
    data = event["data"]
    if isinstance(data, str) and not ce_is_json_media(event.get("datacontenttype", CONTENT_TYPE_JSON)):
        # The same charset the receiving side decodes with (UTF-8 unless named).
        try:
            charset = _charset(str(event.get("datacontenttype", "")))
        except CloudEventInvalid:
            charset = "utf-8"
        return data.encode(charset, errors="replace")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def ce_size(event: Mapping[str, Any]) -> int:
    """Bytes of the structured JSON form (what the size limit counts)."""
    return len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())


def ce_correlation_id(event: Mapping[str, Any]) -> str:
    """The event's flow id (extension ``correlationid``), or "" if it has none."""
    value = event.get(EXT_CORRELATION_ID)
    return str(value) if value not in (None, "") else ""


def ce_new_correlation_id() -> str:
    return uuid.uuid4().hex


def ce_scope(
    event: Mapping[str, Any],
    *,
    project_slug: str | None,
    correlation_id: str = "",
) -> dict[str, Any]:
    """What an edge adapter puts on Kafka: the client's event with every
    reserved ``k8x*`` extension removed (no spoofing), ``k8xproject`` set to
    the project the credential belongs to (none for platform-wide senders),
    and a ``correlationid`` (the event's own, else ``correlation_id``, else a
    new one)."""
    scoped = {k: v for k, v in event.items() if not k.startswith(RESERVED_EXTENSION_PREFIX)}
    if project_slug:
        scoped[EXT_PROJECT] = project_slug
    if not ce_correlation_id(scoped):
        scoped[EXT_CORRELATION_ID] = correlation_id or ce_new_correlation_id()
    return scoped


def ce_new(
    *,
    type: str,
    source: str,
    data: Any = None,
    subject: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A new valid event with JSON data; K8X fills id, time and specversion."""
    event: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": ce_time_format(time or datetime.now(UTC)),
        "datacontenttype": CONTENT_TYPE_JSON,
    }
    if subject:
        event["subject"] = subject
    if data is not None:
        event["data"] = data
    event.update(extensions or {})
    ce_validate(event)
    return event


# --- Kafka binding --------------------------------------------------------------


def ce_kafka_key(event: Mapping[str, Any]) -> bytes:
    """``partitionkey`` extension, else ``subject``, else ``source``."""
    for name in (EXT_PARTITION_KEY, "subject", "source"):
        value = event.get(name)
        if value not in (None, ""):
            return str(value).encode()
    return b""


def _header_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode()


def ce_to_kafka(event: Mapping[str, Any]) -> tuple[bytes | None, list[tuple[str, bytes]], bytes]:
    """(key, headers, value) in the CloudEvents Kafka *binary* mode: every
    attribute as a ``ce_<name>`` header, ``datacontenttype`` as
    ``content-type``, the data as the value. A JSON ``data`` without a
    ``datacontenttype`` gets ``content-type: application/json`` (which is what
    the JSON format implies), so a binary-mode reader parses it back."""
    ce_validate(event)
    headers: list[tuple[str, bytes]] = []
    for name, value in event.items():
        if name in DATA_KEYS:
            continue
        if name == "datacontenttype":
            headers.append(("content-type", _header_value(value)))
        else:
            headers.append((f"{KAFKA_CE_PREFIX}{name}", _header_value(value)))
    if "datacontenttype" not in event and "data" in event:
        headers.append(("content-type", CONTENT_TYPE_JSON.encode()))
    return ce_kafka_key(event), headers, ce_data_bytes(event)


def _headers_list(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> Iterator[tuple[str, bytes]]:
    if headers is None:
        return
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if value is None:
            continue
        yield str(name), (value if isinstance(value, bytes) else str(value).encode())


def _data_from_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Binary-mode data (HTTP body or Kafka value) in structured form."""
    if not body:
        return {}
    media = ce_media_type(content_type)
    if content_type is None or ce_is_json_media(media):
        try:
            return {"data": ce_json_parse(body, what=f"data ({content_type or 'no content type'})", field="data")}
        except CloudEventInvalid:
            if content_type is None:
                # No content type: opaque data. Keep text as text.
                try:
                    return {"data": body.decode()}
                except UnicodeDecodeError:
                    return {"data_base64": base64.b64encode(body).decode()}
            raise
    if TEXT_MEDIA_RE.match(media):
        return {"data": _text_decode(body, content_type or "")}
    return {"data_base64": base64.b64encode(body).decode()}


def _charset(content_type: str) -> str:
    """The charset a content type names (UTF-8 by default); refuses unknown ones."""
    charset = "utf-8"
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        codecs.lookup(charset)
    except LookupError:
        raise CloudEventInvalid(f"unknown charset {charset!r} in content type {content_type!r}", field="data") from None
    return charset


def _text_decode(body: bytes, content_type: str) -> str:
    charset = _charset(content_type)
    try:
        return body.decode(charset)
    except UnicodeDecodeError as exc:
        raise CloudEventInvalid(
            f"data is not valid {charset} text ({content_type}): byte {exc.start}", field="data"
        ) from exc


def _structured_from_json(body: bytes) -> dict[str, Any]:
    return ce_normalize(ce_json_parse(body))


def ce_from_kafka(
    headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None,
    value: bytes | None,
    *,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Decode a Kafka message in either CloudEvents mode to the structured form.

    Structured mode: a ``content-type`` header starting with
    ``application/cloudevents`` and the whole event as JSON in the value.
    Binary mode: ``ce_*`` headers. The message key is not turned into a
    ``partitionkey`` (K8X derives its key from subject/source; mapping it back
    would invent an extension the sender never set)."""
    body = value or b""
    limit = settings.K8X_MAX_EVENT_BYTES if max_bytes is None else max_bytes
    # One pass over the headers: size, text, attributes. A size over the limit
    # is reported before a header that is not UTF-8.
    size = len(body)
    bad_header = ""
    content_type: str | None = None
    attrs: dict[str, Any] = {}
    # What the hub passes (a list of (str, bytes)) is read as it is; anything else is normalised first.
    pairs = headers if type(headers) is list else _headers_list(headers)
    for name, raw in pairs:
        if type(name) is not str or type(raw) is not bytes:
            if raw is None:
                continue
            name, raw = str(name), raw if isinstance(raw, bytes) else str(raw).encode()
        size += len(name) + len(raw)
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            bad_header = bad_header or name
            continue
        lname = name.lower()
        if lname == "content-type":
            content_type = text
        elif lname.startswith(KAFKA_CE_PREFIX):
            attrs[lname[len(KAFKA_CE_PREFIX) :]] = text
    if size > limit:
        raise CloudEventTooLarge(f"message is {size} bytes, over the limit of {limit} bytes", field="size")
    if bad_header:
        raise CloudEventInvalid(f"header {bad_header!r} is not valid UTF-8", field=bad_header)
    media = ce_media_type(content_type)
    if media.startswith("application/cloudevents"):
        if media == CONTENT_TYPE_BATCH:
            raise CloudEventUnsupportedMedia("batch mode is not defined for Kafka", field="content-type")
        if media != CONTENT_TYPE_STRUCTURED:
            raise CloudEventUnsupportedMedia(f"unsupported event format {media!r}", field="content-type")
        return _structured_from_json(body)
    if not attrs:
        raise CloudEventInvalid(
            "not a CloudEvent: no ce_* headers (binary mode) and no "
            "content-type application/cloudevents+json (structured mode)",
            field="headers",
        )
    if content_type is not None:
        attrs["datacontenttype"] = content_type
    attrs.update(_data_from_body(body, content_type))
    return ce_normalize(attrs)


# --- HTTP binding ---------------------------------------------------------------


def ce_from_http(
    *,
    headers: Mapping[str, str],
    body: bytes,
    max_batch: int | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Decode an HTTP request in the CloudEvents HTTP binding.

    Returns (mode, events) with mode ``binary``, ``structured`` or ``batch``.
    ``headers`` are HTTP header names (any case) to values."""
    lower = {k.lower(): v for k, v in headers.items()}
    content_type = lower.get("content-type")
    media = ce_media_type(content_type)
    ce_headers = {k[len(HTTP_CE_PREFIX) :]: v for k, v in lower.items() if k.startswith(HTTP_CE_PREFIX)}
    if media == CONTENT_TYPE_BATCH:
        parsed = ce_json_parse(body)
        if not isinstance(parsed, list):
            raise CloudEventInvalid("a batch must be a JSON array of events", field="body")
        if not parsed:
            raise CloudEventInvalid("a batch must hold at least one event", field="body")
        limit = settings.K8X_MAX_BATCH_EVENTS if max_batch is None else max_batch
        if len(parsed) > limit:
            raise CloudEventInvalid(f"a batch holds at most {limit} events, got {len(parsed)}", field="body")
        events: list[dict[str, Any]] = []
        for index, item in enumerate(parsed):
            try:
                events.append(ce_normalize(item))
            except CloudEventInvalid as exc:
                raise CloudEventInvalid(f"event [{index}]: {exc.message}", field=f"[{index}].{exc.field}") from exc
        return "batch", events
    if media.startswith("application/cloudevents"):
        if media != CONTENT_TYPE_STRUCTURED:
            raise CloudEventUnsupportedMedia(
                f"unsupported event format {media!r}: use {CONTENT_TYPE_STRUCTURED} or {CONTENT_TYPE_BATCH}",
                field="content-type",
            )
        return "structured", [_structured_from_json(body)]
    if ce_headers:
        attrs: dict[str, Any] = {name: unquote(value) for name, value in ce_headers.items()}
        if content_type:
            attrs["datacontenttype"] = content_type
        attrs.update(_data_from_body(body, content_type or None))
        return "binary", [ce_normalize(attrs)]
    if media in ("", CONTENT_TYPE_JSON) or ce_is_json_media(media):
        raise CloudEventUnsupportedMedia(
            "not a CloudEvent: send ce-* headers (binary mode) or Content-Type "
            f"{CONTENT_TYPE_STRUCTURED} (structured) or {CONTENT_TYPE_BATCH} (batch); "
            "for plain JSON use POST /api/events/simple",
            field="content-type",
        )
    raise CloudEventUnsupportedMedia(
        f"unsupported content type {content_type!r}: send ce-* headers (binary mode), "
        f"{CONTENT_TYPE_STRUCTURED} or {CONTENT_TYPE_BATCH}",
        field="content-type",
    )
