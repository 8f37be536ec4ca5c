"""A running container emits a follow-up event (K8X_EVENTS_URL + K8X_RUN_TOKEN) that
triggers a second service; both runs share the correlation id. Real path end to
end: pod → HTTP bridge on the pod bridge address → Kafka → hub → RQ → worker →
Job, with the watcher following both."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from k8x_core.models import Event, Run, RunStatus, Service
from k8x_core.runs.logs import run_log_text
from k8x_core.watch.watcher import Watcher
from tests.k8x_core.runs.conftest import send_event, wait_run
from tests.k8x_core.runs.test_launch_cluster import python_template, sdk_configmap

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]

EMITTER = """
from k8x_sdk import context
answer = context.events.send("com.test.chain.next", {"from_run": context.run_id, "n": 2})
print("SENT=" + answer["id"], flush=True)
"""


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
    assert done1.status == RunStatus.SUCCEEDED, (done1.reason, done1.message, run_log_text(done1.pk))
    assert "SENT=" in run_log_text(done1.pk)

    deadline = time.monotonic() + 60
    while not Run.objects.filter(service=second).exists():
        assert time.monotonic() < deadline, "the follow-up event triggered no run"
        time.sleep(0.2)
    run2 = Run.objects.get(service=second)
    done2 = wait_run(run2.pk, timeout=120)
    assert done2.status == RunStatus.SUCCEEDED, (done2.reason, done2.message, run_log_text(done2.pk))
    assert done2.correlation_id == done1.correlation_id == run1.correlation_id
    assert done2.event_id is not None
    follow_up = Event.objects.get(pk=done2.event_id)
    assert follow_up.type == "com.test.chain.next"
    assert follow_up.correlation_id == done1.correlation_id
    assert follow_up.project_id == first.project_id  # a run token is scoped to its project
    assert f'"from_run":"{run1.pk}"' in run_log_text(done2.pk).replace(" ", "")
