"""sdk/python/k8x_sdk.py: reads of the contract, and a follow-up event sent to a real HTTP server."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.sdk.conftest import SDK, Sink


def _sdk() -> ModuleType:
    # Services copy the file next to their code, so it is loaded by path here as well.
    spec = importlib.util.spec_from_file_location("k8x_sdk", SDK / "python" / "k8x_sdk.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["k8x_sdk"] = module
    spec.loader.exec_module(module)
    return module


EVENT = {"specversion": "1.0", "id": "e1", "type": "com.acme.order.created", "source": "/shop", "data": {"amount": 5}}


def test_params_event_and_configs(tmp_path: Path) -> None:
    sdk = _sdk()
    ctx = sdk.Context({"K8X_PARAMS": '{"name": "Ada"}', "GREETING": "hi", "K8X_RUN_ID": "r1"})
    assert ctx.params == {"name": "Ada"}
    assert ctx.config["GREETING"] == "hi"
    assert "K8X_RUN_ID" not in ctx.config and ctx.run_id == "r1"
    assert sdk.Context({"K8X_EVENT": json.dumps(EVENT)}).params == {"amount": 5}
    big = tmp_path / "event.json"
    big.write_text(json.dumps(EVENT))
    assert sdk.Context({"K8X_EVENT_FILE": str(big), "K8X_EVENT": "{}"}).event["type"] == "com.acme.order.created"


def test_log_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    _sdk().Context({"K8X_RUN_ID": "r1"}).log("hello", n=1)
    assert json.loads(capsys.readouterr().out) == {"level": "info", "msg": "hello", "run_id": "r1", "n": 1}


def test_send_posts_a_cloudevent_with_token_and_correlation(event_sink: Sink) -> None:
    env = {
        "K8X_EVENTS_URL": event_sink.url,
        "K8X_RUN_TOKEN": "tok",
        "K8X_CORRELATION_ID": "cid-1",
        "K8X_PROJECT": "demo",
        "K8X_SERVICE": "python-hello",
    }
    answer = _sdk().Context(env).events.send("com.acme.next", {"n": 2}, subject="s")
    assert answer == {"id": "new-id", "correlation_id": "cid-1"}
    (request,) = event_sink.requests
    assert request["headers"]["Authorization"] == "Bearer tok"
    assert request["headers"]["Content-Type"] == "application/cloudevents+json"
    body: dict[str, Any] = request["body"]
    assert (body["type"], body["source"], body["correlationid"], body["subject"], body["data"]) == (
        "com.acme.next",
        "k8x://demo/python-hello",
        "cid-1",
        "s",
        {"n": 2},
    )


def test_send_raises_with_k8x_answer_on_refusal(event_sink: Sink) -> None:
    sdk = _sdk()
    event_sink.status, event_sink.answer = 400, {"error": "type is missing", "field": "type"}
    with pytest.raises(sdk.EventSendError, match="type is missing") as info:
        sdk.Context({"K8X_EVENTS_URL": event_sink.url, "K8X_RUN_TOKEN": "t"}).events.send("x")
    assert info.value.status == 400
