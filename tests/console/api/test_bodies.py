"""Hostile request bodies against a real Daphne server (the `make up` web
process): one size limit for the server, Django and the fast path, enforced
while the body arrives (a chunked body growing past it is cut off, a declared
length over it is not read at all); deep JSON and invalid UTF-8 are 400s
naming the problem, never 500s, on the fast path and through Django."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from k8x_core.events.apikeys import apikey_create
from k8x_core.models import Project
from tests.ports import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[3]
EVENT_LIMIT = 256 * 1024
SERVER_LIMIT = 1024 * 1024  # K8X_MAX_BATCH_BYTES: the largest body any endpoint takes
CE = "application/cloudevents+json"


@dataclass
class Web:
    port: int
    project: Project
    log: Path

    def key(self) -> str:
        """A fresh API key: its first request goes through Django (then it is cached)."""
        return apikey_create(project=self.project, name=uuid.uuid4().hex[:8])[1]

    def warm_key(self) -> str:
        """An API key the server has cached: its requests take the fast path."""
        key = self.key()
        status, body = self.post("/api/events", json.dumps(structured()).encode(), {"Content-Type": CE}, key)
        assert status == 202, body
        return key

    def post(self, path: str, body: bytes, headers: dict[str, str], key: str) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers={"X-API-Key": key, **headers})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()


def structured(**extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "/s", "type": "com.acme.x", **extra}


@pytest.fixture
def web(topic: str, tmp_path: Path, settings: Any) -> Iterator[Web]:
    project = Project.objects.create(slug=f"b{uuid.uuid4().hex[:8]}")
    port = free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "K8X_EVENTS_TOPIC": topic,
        "REDIS_URL": settings.REDIS_URL,
        "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
        "K8X_MAX_EVENT_BYTES": str(EVENT_LIMIT),
        "K8X_MAX_BATCH_BYTES": str(SERVER_LIMIT),
        "K8X_APIKEY_CACHE_SECONDS": "600",
        "CONN_MAX_AGE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "daphne.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "k8x.asgi:application"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "daphne did not answer /healthz\n" + log.read_text()[-3000:]
            time.sleep(0.3)
        yield Web(port=port, project=project, log=log)
        assert "Traceback" not in log.read_text(), log.read_text()[-5000:]
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, json.loads(rest[:length] or b"{}")


def _stream_chunked(port: int, key: str, total: int) -> tuple[int, dict[str, Any], int]:
    """POST a chunked body of up to ``total`` bytes that never ends; returns the
    answer and how many body bytes had been sent when it arrived."""
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(
            b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + CE.encode() + b"\r\n"
            b"X-API-Key: " + key.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"[" * 16384
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        sent = 0
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        status, body = _read_response(sock)
        return status, body, sent
    finally:
        sock.close()


def test_declared_length_over_the_limit_is_refused_before_the_body(web: Web) -> None:
    for key in (web.key(), web.warm_key()):  # through Django, then on the fast path
        sock = socket.create_connection(("127.0.0.1", web.port))
        try:
            sock.sendall(
                b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + CE.encode() + b"\r\n"
                b"X-API-Key: " + key.encode() + b"\r\nContent-Length: 50000000\r\n\r\n"
            )
            start = time.monotonic()
            status, body = _read_response(sock)  # not one body byte sent
            assert time.monotonic() - start < 5
        finally:
            sock.close()
        assert status == 413
        assert body == {"error": f"body is 50000000 bytes, over the limit of {SERVER_LIMIT} bytes", "field": "body"}


@pytest.mark.parametrize("path", ["django", "fast"])
def test_chunked_body_growing_past_the_limit_is_cut_off(web: Web, path: str) -> None:
    key = web.key() if path == "django" else web.warm_key()
    status, body, sent = _stream_chunked(web.port, key, total=64 * 1024 * 1024)
    assert status == 413, body
    assert "over the limit" in body["error"] and body["field"] == "body"
    # Answered while the client was still sending: kernel buffers aside, the
    # server stopped at its limit instead of reading 64 MiB.
    assert sent < 16 * 1024 * 1024, sent


def test_event_limit_applies_below_the_server_limit(web: Web) -> None:
    big = json.dumps(structured(data={"blob": "x" * (EVENT_LIMIT + 10)})).encode()
    for key in (web.key(), web.warm_key()):
        status, body = web.post("/api/events", big, {"Content-Type": CE}, key)
        assert status == 413
        assert f"over the limit of {EVENT_LIMIT} bytes" in body["error"]


@pytest.mark.parametrize("path", ["django", "fast"])
def test_deep_json_and_invalid_utf8_are_400s_naming_the_problem(web: Web, path: str) -> None:
    def key() -> str:
        return web.key() if path == "django" else warm

    warm = web.warm_key()
    cases: list[tuple[str, bytes, dict[str, str], str]] = [
        ("/api/events", b"[" * 100_000, {"Content-Type": CE}, "nested too deeply"),
        ("/api/events", b'{"a":' * 300 + b"1" + b"}" * 300, {"Content-Type": CE}, "deeper than 100 levels"),
        ("/api/events", b'{"specversion": "1.0", "id": "\xff\xfe"}', {"Content-Type": CE}, "not valid UTF-8"),
        (
            "/api/events",
            b"[" * 100_000,
            {
                "Content-Type": "application/json",
                "ce-specversion": "1.0",
                "ce-id": "d1",
                "ce-source": "/s",
                "ce-type": "t",
            },
            "nested too deeply",
        ),
        ("/api/events/simple", b"[" * 100_000, {"Content-Type": "application/json"}, "nested too deeply"),
        ("/api/events/simple", b'{"event_type": "\xc3\x28"}', {"Content-Type": "application/json"}, "not valid UTF-8"),
    ]
    for url, body, headers, problem in cases:
        status, answer = web.post(url, body, headers, key())
        assert status == 400, (url, problem, answer)
        assert problem in answer["error"], (url, answer)
        assert answer["field"] in ("body", "data")


def test_reserved_source_is_refused_on_the_fast_path_too(web: Web) -> None:
    key = web.warm_key()
    event = structured(source="k8x/scheduler", id="victim/nightly@2030-01-01T00:00:00Z")
    status, body = web.post("/api/events", json.dumps(event).encode(), {"Content-Type": CE}, key)
    assert status == 400
    assert body["field"] == "source" and "reserved" in body["error"]
