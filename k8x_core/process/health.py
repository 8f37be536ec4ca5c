"""The health and metrics port of a long-running process (hub, workers, watcher,
scheduler, reconciler): one small HTTP server in a daemon thread serving

- ``/healthz``: the process loop is alive (its last step was less than
  K8X_HEALTH_STALE_SECONDS ago); 503 otherwise, so a stuck loop gets restarted;
- ``/readyz``: the process can do its work (its own check, e.g. the Kubernetes
  API answers the leader elector: leader or standby);
- ``/metrics``: ``k8x_core.metrics.REGISTRY`` in the Prometheus text format.

The web process answers the same three paths itself (``console.health``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from argparse import ArgumentParser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from k8x_core.metrics import REGISTRY

log = logging.getLogger(__name__)

# Problems that keep a process from being ready, by what is wrong: {"kubernetes": "..."}.
ReadyCheck = Callable[[], dict[str, str]]


def health_alive(*, last_step: float | None, now: float, stale_seconds: float) -> bool:
    """Alive when the loop made a step less than ``stale_seconds`` ago (monotonic clock)."""
    return last_step is not None and now - last_step < stale_seconds


class ProcessHealth:
    """What the health port reports for one process: the loop calls ``beat()`` every
    step; ``ready_check`` names what keeps it from being ready (nothing: ready)."""

    def __init__(self, *, role: str, stale_seconds: float | None = None) -> None:
        self.role = role
        self.stale_seconds = float(settings.K8X_HEALTH_STALE_SECONDS if stale_seconds is None else stale_seconds)
        self.ready_check: ReadyCheck | None = None
        # Called before /metrics is rendered: gauges read at scrape time (queue depth).
        self.collectors: list[Callable[[], None]] = []
        self._last_step: float | None = None

    def beat(self) -> None:
        self._last_step = time.monotonic()

    def liveness(self) -> tuple[bool, dict[str, object]]:
        now = time.monotonic()
        alive = health_alive(last_step=self._last_step, now=now, stale_seconds=self.stale_seconds)
        ago = None if self._last_step is None else round(now - self._last_step, 3)
        return alive, {"alive": alive, "role": self.role, "last_step_seconds_ago": ago}

    def readiness(self) -> tuple[bool, dict[str, object]]:
        problems: dict[str, str] = {}
        if self._last_step is None:
            problems["loop"] = "not started yet"
        if self.ready_check is not None:
            try:
                problems.update(self.ready_check())
            except Exception as exc:  # a failing check means "not ready", never a crash of the server
                problems["check"] = f"{exc.__class__.__name__}: {exc}"[:200]
        return not problems, {"ready": not problems, "role": self.role, "problems": problems}

    def metrics(self) -> bytes:
        for collect in self.collectors:
            try:
                collect()
            except Exception:
                log.warning("metrics collector %s failed", collect, exc_info=True)
        return generate_latest(REGISTRY)


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:
        health = self.server.health
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, health.metrics(), CONTENT_TYPE_LATEST)
            return
        if path in ("/healthz", "/readyz"):
            ok, doc = health.liveness() if path == "/healthz" else health.readiness()
            self._send(200 if ok else 503, json.dumps(doc).encode() + b"\n", "application/json")
            return
        self._send(404, b"not found: /healthz, /readyz or /metrics\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Probes every few seconds would drown the process's own log.
        return


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], health: ProcessHealth) -> None:
        super().__init__(address, _Handler)
        self.health = health
        self.thread = threading.Thread(target=self.serve_forever, name="health-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def health_serve(*, health: ProcessHealth, port: int | None = None, addr: str | None = None) -> HealthServer | None:
    """Serve ``health`` on ``addr:port`` (default K8X_HEALTH_ADDR:K8X_HEALTH_PORT) in a
    daemon thread; None when the port is 0 (off) or cannot be bound (logged: health
    is not worth stopping the process for; a probe that cannot connect says enough)."""
    port = settings.K8X_HEALTH_PORT if port is None else port
    if not port:
        return None
    addr = settings.K8X_HEALTH_ADDR if addr is None else addr
    try:
        server = HealthServer((addr, int(port)), health)
    except OSError as exc:
        log.error("%s: health port %s:%s not served: %s", health.role, addr, port, exc)
        return None
    server.thread.start()
    log.info("%s: /healthz, /readyz and /metrics on %s:%s", health.role, addr, server.port)
    return server


def health_port_argument(parser: ArgumentParser, *aliases: str) -> None:
    """The ``--health-port`` option of a long-running command (default K8X_HEALTH_PORT)."""
    parser.add_argument(
        "--health-port",
        *aliases,
        dest="health_port",
        type=int,
        default=None,
        help="serve /healthz, /readyz and /metrics on this port (default K8X_HEALTH_PORT; 0: off)",
    )
