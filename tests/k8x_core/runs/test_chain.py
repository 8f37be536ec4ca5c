"""A running container emits a follow-up event (K8X_EVENTS_URL + K8X_RUN_TOKEN) that
triggers a second service; both runs share the correlation id. Real path end to
end: pod → HTTP bridge on the pod bridge address → Kafka → hub → RQ → worker →
Job, with the watcher following both."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

from k8x_core.hub.loop import hub_create
from k8x_core.models import Event, Run, RunStatus, Service
from k8x_core.watch.watcher import Watcher
from tests.k8x_core.runs.conftest import send_event, wait_run
from tests.k8x_core.runs.test_launch_cluster import python_template, sdk_configmap

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]

BOOTSTRAP = "127.0.0.1:9092"

EMITTER = """
from k8x_sdk import context
answer = context.events.send("com.test.chain.next", {"from_run": context.run_id, "n": 2})
print("SENT=" + answer["id"], flush=True)
"""


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
def hub(topics: tuple[str, str]) -> Iterator[None]:
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
    yield
    stop.set()
    thread.join(timeout=30)
    AdminClient({"bootstrap.servers": BOOTSTRAP}).delete_consumer_groups([group])


def test_a_run_emits_an_event_that_triggers_a_second_service_in_the_same_flow(
    make_service: Callable[..., Service],
    bridge: str,
    hub: None,
    watcher: Watcher,
    start_worker: Callable[..., Any],
    kube_api: Any,
) -> None:
    first = make_service("emitter", event_type="com.test.chain.start", job_template=python_template(EMITTER))
    sdk_configmap(kube_api, first.project.namespace)
    second = make_service("receiver", event_type="com.test.chain.next", command=["sh", "-c", "echo got $K8X_PARAMS"])
    start_worker()

    (run1,) = send_event("com.test.chain.start", {"n": 1})
    done1 = wait_run(run1.pk, timeout=120)
    assert done1.status == RunStatus.SUCCEEDED, (done1.reason, done1.message, done1.log)
    assert "SENT=" in done1.log

    deadline = time.monotonic() + 60
    while not Run.objects.filter(service=second).exists():
        assert time.monotonic() < deadline, "the follow-up event triggered no run"
        time.sleep(0.2)
    run2 = Run.objects.get(service=second)
    done2 = wait_run(run2.pk, timeout=120)
    assert done2.status == RunStatus.SUCCEEDED, (done2.reason, done2.message, done2.log)
    assert done2.correlation_id == done1.correlation_id == run1.correlation_id
    assert done2.event_id is not None
    follow_up = Event.objects.get(pk=done2.event_id)
    assert follow_up.type == "com.test.chain.next"
    assert follow_up.correlation_id == done1.correlation_id
    assert follow_up.project_id == first.project_id  # a run token is scoped to its project
    assert f'"from_run":"{run1.pk}"' in done2.log.replace(" ", "")
