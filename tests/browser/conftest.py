"""The whole K8X stack for browser tests, on this test's own resources:

- the pytest-django test database (transactional: the processes below see committed rows),
- Kafka topics, a consumer group and an RQ queue of this test's own,
- the local Kubernetes cluster (a fresh namespace as the project's namespace),
- processes started from manage.py exactly as `make up` does: daphne (ASGI: pages and
  websockets), k8x_hub, rqworker, k8x_watch,
- headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Screenshots go to artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = os.environ.get("K8X_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {timeout}s")


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, *args], cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            pytest.fail(f"processes died: {dead}\n" + "\n".join(f"--- {n}\n{self.log_tail(n)}" for n in dead))


@pytest.fixture
def kafka_topics() -> Iterator[tuple[str, str, str]]:
    from confluent_kafka.admin import AdminClient, NewTopic

    suffix = uuid.uuid4().hex[:10]
    topic, dlq, group = f"k8x.events.console-{suffix}", f"k8x.events.dlq.console-{suffix}", f"k8x-hub-console-{suffix}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in (topic, dlq)])
    for fut in futures.values():
        fut.result(timeout=30)
    yield topic, dlq, group
    # Best-effort clean-up: a topic or group that is already gone is fine.
    for fut in admin.delete_topics([topic, dlq]).values():
        with contextlib.suppress(Exception):
            fut.result(timeout=30)
    with contextlib.suppress(Exception):
        admin.delete_consumer_groups([group])[group].result(timeout=30)


@pytest.fixture
def stack(
    transactional_db: None, kube_cluster: Any, kube_namespace: str, kafka_topics: tuple[str, str, str], settings: Any
) -> Iterator[Stack]:
    from redis import Redis
    from rq import Queue

    topic, dlq, group = kafka_topics
    queue = f"k8x-test-console-{uuid.uuid4().hex[:10]}"
    port = free_port()
    db = connection.settings_dict
    logs = ARTIFACTS / "logs" / f"browser-{uuid.uuid4().hex[:6]}"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "K8X_EVENTS_TOPIC": topic,
        "K8X_DLQ_TOPIC": dlq,
        "K8X_HUB_GROUP": group,
        "K8X_QUEUE": queue,
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "KUBECONFIG": kube_cluster.kubeconfig,
        "K8X_EVENTS_URL": f"http://{kube_cluster.bridge_ip}:{port}/api/events",
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "k8x.settings",
        "PYTHONUNBUFFERED": "1",
        "CONN_MAX_AGE": "0",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    s = Stack(base_url=f"http://127.0.0.1:{port}", env=env, logs=logs)
    web = s.start("web", ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "k8x.asgi:application"])
    s.start("hub", ["manage.py", "k8x_hub", "--metrics-port", "0"])
    s.start("worker", ["manage.py", "rqworker", queue, "--worker-class", "rq.SimpleWorker"])
    s.start("watcher", ["manage.py", "k8x_watch", "--namespace", kube_namespace])
    try:
        wait_http(f"{s.base_url}/healthz", proc=web)
        yield s
    finally:
        for proc in s.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in s.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        q = Queue(queue, connection=Redis.from_url(settings.REDIS_URL))
        q.empty()
        q.delete(delete_jobs=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread while it
    # is open; the test's own ORM calls are plain synchronous code all the same.
    # Module scope, and the variable restored, so no later test (async ones,
    # or `check --deploy`, which refuses the variable) inherits either.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield b
            b.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Pages in fresh contexts (one login each); every request is checked to stay on loopback."""
    contexts: list[Any] = []
    external: list[str] = []

    def make() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.on(
            "request",
            lambda req: (
                None
                if req.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:"))
                else external.append(req.url)
            ),
        )
        return page

    yield make
    for c in contexts:
        c.close()
    assert not external, f"the browser made external requests: {external}"


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
