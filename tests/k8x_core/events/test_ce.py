"""ce.py: validation and the HTTP/Kafka bindings, checked against the SDK."""

from __future__ import annotations

import base64
import json

import pytest
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat

from k8x_core.events.ce import (
    CloudEventInvalid,
    CloudEventTooLarge,
    CloudEventUnsupportedMedia,
    ce_correlation_id,
    ce_from_http,
    ce_from_kafka,
    ce_json_parse,
    ce_new,
    ce_scope,
    ce_to_kafka,
    ce_validate,
)

VALID = {"specversion": "1.0", "id": "1", "source": "/s", "type": "com.acme.x"}


@pytest.mark.parametrize(
    ("event", "field", "words"),
    [
        ({k: v for k, v in VALID.items() if k != "id"}, "id", "missing required attribute 'id'"),
        ({k: v for k, v in VALID.items() if k != "source"}, "source", "'source'"),
        ({k: v for k, v in VALID.items() if k != "type"}, "type", "'type'"),
        ({k: v for k, v in VALID.items() if k != "specversion"}, "specversion", "'specversion'"),
        ({**VALID, "specversion": "0.3"}, "specversion", "unsupported specversion"),
        ({**VALID, "id": ""}, "id", "non-empty"),
        ({**VALID, "time": "2024-01-31"}, "time", "RFC 3339"),
        ({**VALID, "time": "2024-13-31T00:00:00Z"}, "time", "time"),
        ({**VALID, "Bad": "x"}, "Bad", "lowercase"),
        ({**VALID, "waytoolongextensionname": "x"}, "waytoolongextensionname", "1 to 20"),
        ({**VALID, "ext": {"a": 1}}, "ext", "string, integer or boolean"),
        ({**VALID, "data": 1, "data_base64": "AA=="}, "data_base64", "not both"),
        ({**VALID, "data_base64": "!!"}, "data_base64", "base64"),
        ([VALID], "event", "JSON object"),
    ],
)
def test_validate_names_the_attribute(event, field, words):
    with pytest.raises(CloudEventInvalid) as exc:
        ce_validate(event)
    assert exc.value.field == field
    assert words in exc.value.message


def test_validate_accepts_full_event():
    ce_validate({**VALID, "time": "2024-01-31T12:00:00.123456789+02:00", "subject": "x", "ext1": 3, "flag": True})


def test_kafka_binary_round_trip_and_sdk_agrees():
    event = ce_new(
        type="com.acme.order.created",
        source="/shop",
        subject="order-1",
        data={"amount": 120, "items": ["é"]},
        extensions={"correlationid": "c1"},
    )
    key, headers, value = ce_to_kafka(event)
    assert key == b"order-1"
    names = dict(headers)
    assert names["ce_type"] == b"com.acme.order.created"
    assert names["content-type"] == b"application/json"
    assert json.loads(value) == {"amount": 120, "items": ["é"]}
    assert ce_from_kafka(headers, value) == event
    sdk_event = sdk_kafka.from_binary(sdk_kafka.KafkaMessage(dict(headers), key, value), JSONFormat())
    assert sdk_event.get_id() == event["id"]
    assert sdk_event.get_data() == event["data"]
    assert sdk_event.get_extension("correlationid") == "c1"


def test_kafka_key_prefers_partitionkey_then_subject_then_source():
    assert ce_to_kafka({**VALID, "partitionkey": "pk", "subject": "s"})[0] == b"pk"
    assert ce_to_kafka({**VALID, "subject": "s"})[0] == b"s"
    assert ce_to_kafka(VALID)[0] == b"/s"


def test_kafka_structured_mode_from_sdk():
    from cloudevents.core.v1.event import CloudEvent

    msg = sdk_kafka.to_structured(CloudEvent({"type": "t", "source": "/x", "id": "9"}, {"a": 1}), JSONFormat())
    event = ce_from_kafka(msg.headers, msg.value)
    assert event["id"] == "9"
    assert event["data"] == {"a": 1}


def test_kafka_binary_data_binary_and_text():
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t")]
    ev = ce_from_kafka([*headers, ("content-type", b"application/octet-stream")], b"\x00\xff")
    assert base64.b64decode(ev["data_base64"]) == b"\x00\xff"
    assert ce_to_kafka(ev)[2] == b"\x00\xff"
    ev = ce_from_kafka([*headers, ("content-type", b"text/plain")], b"hello")
    assert ev["data"] == "hello"
    assert ce_to_kafka(ev)[2] == b"hello"


@pytest.mark.parametrize(
    ("headers", "value", "exc_type", "field"),
    [
        ([("content-type", b"application/cloudevents+json")], b"{nope", CloudEventInvalid, "body"),
        ([("content-type", b"application/cloudevents+json")], b'{"specversion":"1.0"}', CloudEventInvalid, "id"),
        ([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_type", b"t")], b"", CloudEventInvalid, "source"),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"s"),
                ("ce_type", b"t"),
                ("content-type", b"application/json"),
            ],
            b"{bad json",
            CloudEventInvalid,
            "data",
        ),
        ([], b'{"a": 1}', CloudEventInvalid, "headers"),
        ([("content-type", b"application/cloudevents-batch+json")], b"[]", CloudEventUnsupportedMedia, "content-type"),
        ([("content-type", b"application/cloudevents+json")], b"x" * 2000, CloudEventTooLarge, "size"),
    ],
)
def test_kafka_decode_rejects(headers, value, exc_type, field):
    with pytest.raises(exc_type) as exc:
        ce_from_kafka(headers, value, max_bytes=1000)
    assert exc.value.field == field


def test_http_binary_percent_decoding_and_modes():
    mode, events = ce_from_http(
        headers={
            "Ce-Specversion": "1.0",
            "Ce-Id": "1",
            "Ce-Source": "%2Fa%20b",
            "Ce-Type": "t",
            "Content-Type": "application/json; charset=utf-8",
        },
        body=b'{"k": [1]}',
    )
    assert mode == "binary"
    assert events[0]["source"] == "/a b"
    assert events[0]["data"] == {"k": [1]}
    mode, events = ce_from_http(
        headers={"content-type": "application/cloudevents-batch+json"}, body=json.dumps([VALID, VALID]).encode()
    )
    assert mode == "batch"
    assert len(events) == 2


def test_http_batch_limits_and_index_in_message():
    with pytest.raises(CloudEventInvalid, match="at most 1 events"):
        ce_from_http(
            headers={"content-type": "application/cloudevents-batch+json"},
            body=json.dumps([VALID, VALID]).encode(),
            max_batch=1,
        )
    with pytest.raises(CloudEventInvalid) as exc:
        ce_from_http(
            headers={"content-type": "application/cloudevents-batch+json"},
            body=json.dumps([VALID, {**VALID, "type": ""}]).encode(),
        )
    assert exc.value.field == "[1].type"


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "", "application/cloudevents+xml"])
def test_http_wrong_content_type_is_415(ctype):
    with pytest.raises(CloudEventUnsupportedMedia) as exc:
        ce_from_http(headers={"content-type": ctype} if ctype else {}, body=b"{}")
    assert exc.value.status == 415


def test_scope_strips_reserved_extensions_and_sets_project_and_correlation():
    spoofed = {**VALID, "k8xproject": "other", "k8xservice": "x", "correlationid": "keep"}
    scoped = ce_scope(spoofed, project_slug="mine")
    assert scoped["k8xproject"] == "mine"
    assert "k8xservice" not in scoped
    assert ce_correlation_id(scoped) == "keep"
    platform = ce_scope(spoofed, project_slug=None)
    assert "k8xproject" not in platform
    fresh = ce_scope(VALID, project_slug=None)
    assert len(ce_correlation_id(fresh)) == 32
    assert ce_scope(VALID, project_slug=None, correlation_id="run-c")["correlationid"] == "run-c"


@pytest.mark.parametrize(
    "text",
    [
        b'{"amount":12,"customer":"c1","items":[{"sku":"A1"}],"ok":true,"none":null,"f":-1.5e3}',
        # Past 64 bits: exact integers, as json reads them (orjson would give floats).
        b'{"id":123456789012345678901234567890,"neg":-9223372036854775809,"max":18446744073709551616}',
        b'{"f":0.12345678901234567890123}',
        # What only json accepts: NaN and infinities, a byte order mark, UTF-16, lone surrogates.
        b'{"x":NaN,"y":-Infinity,"z":1e400}',
        b'\xef\xbb\xbf{"bom":1}',
        '{"utf16":"é"}'.encode("utf-16"),
        b'{"s":"\\ud800"}',
        '{"str":"é"}',
        b'{"a":1,"a":2}',
    ],
)
def test_json_data_is_read_as_json_reads_it(text: bytes | str) -> None:
    parsed = ce_json_parse(text)
    expected = json.loads(text)
    assert json.dumps(parsed, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert [type(v) for v in parsed.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b'{"a":', "is not valid JSON"),
        (b"\xff\xfe\xfa", "not valid UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "nested"),
        (b"", "is not valid JSON"),
    ],
)
def test_json_errors_keep_their_messages(text: bytes, words: str) -> None:
    with pytest.raises(CloudEventInvalid, match=words):
        ce_json_parse(text)


def test_a_big_integer_in_kafka_data_stays_exact() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s"), ("ce_type", b"t")]
    headers.append(("content-type", b"application/json"))
    event = ce_from_kafka(headers, b'{"order":98765432109876543210987}')
    assert event["data"] == {"order": 98765432109876543210987}
