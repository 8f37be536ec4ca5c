"""Fixtures for launcher/watcher tests against the real local cluster, PostgreSQL
and Redis: a project whose namespace is a fresh test namespace, an RQ queue of
the test's own, a watcher thread (or process) and rqworker processes that use
the test database; for whole flows, the event bridge (this test's Django on the
pod bridge address), Kafka topics of the test's own and a hub thread. Other
test packages import these fixtures by name (tests/worker, tests/examples)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connection

from k8x_core.events.ce import ce_new, ce_to_kafka
from k8x_core.hub.loop import hub_create, hub_process_batch
from k8x_core.hub.matching import trigger_index_load
from k8x_core.kafka.consumer import HubMessage
from k8x_core.models import TERMINAL_STATUSES, Event, Project, Run, Service, Trigger
from k8x_core.runs.configs import config_set, secret_set
from k8x_core.watch.watcher import Watcher

REPO = Path(__file__).resolve().parents[3]
BUSYBOX = "localhost:5000/k8x/busybox:1"
BOOTSTRAP = "127.0.0.1:9092"
PYTHON = "localhost:5000/k8x/python:3"

pytestmark = pytest.mark.cluster


@pytest.fixture
def project(transactional_db: None, kube_namespace: str, cluster_settings: Any) -> Project:
    slug = f"t{uuid.uuid4().hex[:8]}"
    return Project.objects.create(slug=slug, namespace=kube_namespace)


@pytest.fixture
def make_service(project: Project) -> Callable[..., Service]:
    def make(name: str, *, event_type: str | None = None, **fields: Any) -> Service:
        fields.setdefault("image", BUSYBOX if not fields.get("job_template") else "")
        service = Service.objects.create(project=project, name=name, **fields)
        Trigger.objects.create(service=service, event_type=event_type or f"com.test.{name}")
        return service

    return make


def send_event(type: str, data: Any = None, *, source: str = "/tests/launch", **kw: Any) -> list[Run]:
    """An event through the hub's batch step (decode, match, record, enqueue on commit)."""
    ev = ce_new(type=type, source=source, data=data, **kw)
    key, headers, value = ce_to_kafka(ev)
    message = HubMessage(topic="t", partition=0, offset=0, key=key, headers=list(headers), value=value)
    hub_process_batch(messages=[message], index=trigger_index_load())
    event = Event.objects.get(source=source, ce_id=ev["id"])
    return list(Run.objects.filter(event=event).order_by("created_at"))


def wait_run(run_id: Any, *, timeout: float = 120, statuses: Any = TERMINAL_STATUSES) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run.status} after {timeout:.0f}s ({run.reason} {run.message})")
        time.sleep(0.2)


@pytest.fixture
def start_watcher(project: Project) -> Iterator[Callable[[], Watcher]]:
    """Start the watcher in a thread of the test process (same database and settings)."""
    started: list[tuple[Watcher, threading.Thread]] = []

    def start() -> Watcher:
        w = Watcher(namespace=project.namespace)
        thread = threading.Thread(target=w.run_forever, name="test-watcher", daemon=True)
        thread.start()
        started.append((w, thread))
        return w

    yield start
    for w, thread in started:
        w.stop()
        thread.join(timeout=10)


@pytest.fixture
def watcher(start_watcher: Callable[[], Watcher]) -> Watcher:
    return start_watcher()


def process_env(queue_name: str, **extra: str) -> dict[str, str]:
    """Environment for a manage.py process that uses this test's database and queue."""
    s = connection.settings_dict
    url = f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"
    from django.conf import settings

    return {
        **os.environ,
        "DATABASE_URL": url,
        "K8X_QUEUE": queue_name,
        "KUBECONFIG": settings.KUBECONFIG,
        "K8X_JOB_TTL_SECONDS": str(settings.K8X_JOB_TTL_SECONDS),
        "K8X_EVENTS_URL": settings.K8X_EVENTS_URL,
        "DJANGO_SETTINGS_MODULE": "k8x.settings",
        **extra,
    }


@pytest.fixture
def start_worker(queue_name: str, project: Project) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``manage.py rqworker`` processes on this test's queue."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*, burst: bool = False, simple: bool = False, **env: str) -> subprocess.Popen[bytes]:
        # The default worker forks a work horse per job; SimpleWorker runs jobs in
        # its own process (so a kill -9 in a job kills the worker itself).
        args = [sys.executable, "manage.py", "rqworker", queue_name]
        if simple:
            args += ["--worker-class", "rq.SimpleWorker"]
        if burst:
            args.append("--burst")
        proc = subprocess.Popen(args, cwd=REPO, env=process_env(queue_name, **env))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def configs_and_secrets(project: Project) -> Callable[[Service], dict[str, str]]:
    """Configs and secrets at all three scopes; returns the values the service must see."""

    def set_for(service: Service) -> dict[str, str]:
        config_set(key="GREETING", value="hello from project", project=project)
        config_set(key="COLOR", value="blue", service=service)
        secret_set(key="DB_PASSWORD", value=f"s3cr3t-{uuid.uuid4().hex[:8]}", service=service)
        secret_set(key="API_TOKEN", value=f"tok-{uuid.uuid4().hex[:8]}", project=project)
        return {
            "GREETING": "hello from project",
            "COLOR": "blue",
            "DB_PASSWORD": service_secret(service, "DB_PASSWORD"),
            "API_TOKEN": service_secret(service, "API_TOKEN"),
        }

    return set_for


def service_secret(service: Service, key: str) -> str:
    from k8x_core.runs.configs import secrets_resolve

    return secrets_resolve(service=service)[key]


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def bridge(settings: Any, project: Any) -> Iterator[str]:
    """The event bridge (this test's Django) on the pod bridge address, where pods reach us."""
    httpd = ThreadedWSGIServer(("10.244.0.1", 0), _Quiet, allow_reuse_address=True)
    httpd.set_app(WSGIHandler())
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://10.244.0.1:{httpd.server_address[1]}/api/events"
    settings.K8X_EVENTS_URL = url
    yield url
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def topics(settings: Any) -> Iterator[tuple[str, str]]:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    events, dlq = f"k8x-test-launch-{uuid.uuid4().hex[:8]}", f"k8x-test-launch-dlq-{uuid.uuid4().hex[:8]}"
    for f in admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in (events, dlq)]).values():
        f.result(timeout=30)
    settings.K8X_EVENTS_TOPIC = events
    settings.K8X_DLQ_TOPIC = dlq
    yield events, dlq
    for f in admin.delete_topics([events, dlq]).values():
        with contextlib.suppress(Exception):  # cleanup only
            f.result(timeout=30)


@pytest.fixture
def hub(topics: tuple[str, str]) -> Iterator[Any]:
    """A hub stepping in a thread; yields it (its ``index`` tells which triggers it has loaded)."""
    group = f"k8x-test-launch-{uuid.uuid4().hex[:8]}"
    h = hub_create(topics=[topics[0]], group=group)
    stop = threading.Event()

    def loop() -> None:
        from django.db import connection

        while not stop.is_set():
            h.step()
        h.close()
        connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield h
    stop.set()
    thread.join(timeout=30)
    AdminClient({"bootstrap.servers": BOOTSTRAP}).delete_consumer_groups([group])
