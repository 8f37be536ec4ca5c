"""Helpers for tests that start K8X's long-running processes: free ports, the
environment of a process using this test's database, and reading their health port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parents[3]


def process_env(**extra: str) -> dict[str, str]:
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        K8X_QUEUE=settings.K8X_QUEUE,
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="k8x.settings",
    )
    if settings.KUBECONFIG:
        env["KUBECONFIG"] = str(settings.KUBECONFIG)
    env.update(extra)
    return env


def start(args: list[str], *, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def get(port: int, path: str, *, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:port/path; (0, error) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def get_json(port: int, path: str) -> tuple[int, dict[str, Any]]:
    status, body = get(port, path)
    return status, (json.loads(body) if status else {})


def metric(port: int, line_prefix: str) -> float | None:
    """The value of the first /metrics sample line starting with ``line_prefix``."""
    status, body = get(port, "/metrics")
    if status != 200:
        return None
    for line in body.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for(
    predicate: Any,
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    interval: float = 0.1,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process exited ({proc.returncode}) while waiting for {what}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n{_tail(log)}")
        time.sleep(interval)


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class TcpProxy:
    """A loopback TCP relay to ``upstream`` that ``cut()`` severs: every open
    connection is closed and new ones are refused (a real network partition between
    one process and the API server)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.cut_event = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut_event.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.cut_event.is_set():
                    client.close()
                    server.close()
                    return
                self.sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.cut_event.set()
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


def api_server_address(kubeconfig: str) -> tuple[str, int]:
    """(host, port) of the kubeconfig's API server."""
    server = urlsplit(yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"])
    assert server.hostname and server.port, f"kubeconfig server without host:port: {server.geturl()}"
    return server.hostname, server.port


def kubeconfig_via(kubeconfig: str, proxy_port: int, path: Path) -> None:
    """Write a copy of ``kubeconfig`` whose API server is reached through
    127.0.0.1:proxy_port (TLS still checks the real server's name)."""
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    cluster = doc["clusters"][0]["cluster"]
    host = urlsplit(cluster["server"]).hostname
    cluster["server"] = f"https://127.0.0.1:{proxy_port}"
    if host != "127.0.0.1":
        cluster["tls-server-name"] = host
    path.write_text(yaml.safe_dump(doc))
