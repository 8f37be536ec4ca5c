"""Real receivers for notification tests: an HTTP server and an SMTP sink
(aiosmtpd) on free loopback ports, and a burst RQ SimpleWorker loop that runs
the test queue's jobs (with rq's scheduler, so retries with backoff come due)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from redis import Redis
from rq import Queue, SimpleWorker

from tests.ports import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An HTTP server that records POSTs and answers with ``statuses`` in turn
    (the last one repeated)."""

    def __init__(self, port: int | None = None, statuses: list[int] | None = None) -> None:
        self.port = port or free_port()
        self.statuses = list(statuses or [200])
        self.requests: list[Received] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"receiver says " + str(status).encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class SmtpSink:
    """aiosmtpd on a free loopback port; keeps every message it receives."""

    port: int = field(default_factory=free_port)
    messages: list[Any] = field(default_factory=list)
    _controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def start(self) -> SmtpSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


def drain(queue_name: str, *, until: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run the queue's jobs with burst SimpleWorkers (scheduler included) until
    ``until()`` holds."""
    conn = Redis.from_url(settings.REDIS_URL)
    queue = Queue(queue_name, connection=conn)
    deadline = time.monotonic() + timeout
    while True:
        SimpleWorker([queue], connection=conn).work(burst=True, with_scheduler=True)
        if until():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not done after {timeout:.0f}s of running queue {queue_name}")
        time.sleep(0.2)
