"""A real HTTP server on loopback that stands in for K8X's event bridge: it
records each request and answers with a configurable status and body."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "sdk"


@dataclass
class Sink:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 202
    answer: dict[str, Any] = field(default_factory=lambda: {"id": "new-id", "correlation_id": "cid-1"})


@pytest.fixture
def event_sink() -> Iterator[Sink]:
    sink = Sink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            sink.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            payload = json.dumps(sink.answer).encode()
            self.send_response(sink.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    sink.url = f"http://127.0.0.1:{httpd.server_address[1]}/api/events"
    yield sink
    httpd.shutdown()
    httpd.server_close()
