"""A run's end notifies, whichever path ends it: a failed Job seen by the
watcher, a Job the API refused (the launcher), a timeout. Real cluster, Redis,
PostgreSQL, a local HTTP receiver and a burst RQ SimpleWorker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from k8x_core.models import DeliveryStatus, NotificationDelivery, NotifyChannel, Project, RunStatus, Service
from k8x_core.notify.rules import rule_save
from k8x_core.runs.launch import LaunchResult, run_launch
from k8x_core.runs.transitions import run_transition
from k8x_core.watch.watcher import Watcher
from tests.k8x_core.runs.conftest import send_event, wait_run
from tests.notify_support import Receiver, drain

pytestmark = pytest.mark.cluster

TIMEOUT_TEMPLATE = json.dumps(
    {
        "spec": {
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {"name": "slow", "image": "localhost:5000/k8x/busybox:1", "command": ["sleep", "60"]}
                    ],
                }
            }
        }
    }
)
INVALID_TEMPLATE = json.dumps(
    {"spec": {"template": {"spec": {"containers": [{"name": "Bad_Name", "image": "localhost:5000/k8x/busybox:1"}]}}}}
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def test_every_terminal_path_notifies_once(
    project: Project,
    make_service: Callable[..., Service],
    watcher: Watcher,
    receiver: Receiver,
    queue_name: str,
    settings: Any,
) -> None:
    settings.K8X_NOTIFY_BACKOFF_SECONDS = 1
    rule_save(project=project, name="all", channel=NotifyChannel.WEBHOOK, url=receiver.url, secret="k")
    make_service("exits", command=["sh", "-c", "exit 5"])
    make_service("slow", job_template=TIMEOUT_TEMPLATE, timeout_seconds=3)
    make_service("refused", job_template=INVALID_TEMPLATE)
    cancelled = make_service("cancelled")

    (watcher_failed,) = send_event("com.test.exits")
    (timed_out,) = send_event("com.test.slow")
    (launcher_failed,) = send_event("com.test.refused")
    (skipped,) = send_event("com.test.cancelled")
    assert run_transition(run_id=skipped.pk, to=RunStatus.CANCELLED, reason="Cancelled")
    # The launch jobs the hub enqueued, run by a real worker.
    drain(queue_name, until=lambda: True)
    # The launcher failed the refused one (a second launch finds it ended).
    assert run_launch(run_id=launcher_failed.pk) == LaunchResult.SKIPPED
    for run, status in ((watcher_failed, RunStatus.FAILED), (timed_out, RunStatus.TIMED_OUT)):
        assert wait_run(run.pk, timeout=120).status == status

    drain(queue_name, until=lambda: NotificationDelivery.objects.filter(status=DeliveryStatus.SENT).count() == 3)
    drain(queue_name, until=lambda: True)
    sent = set(NotificationDelivery.objects.values_list("run__service__name", "kind"))
    assert sent == {("exits", "failed"), ("slow", "timed_out"), ("refused", "failed")}
    bodies = sorted((json.loads(r.body)["service"], json.loads(r.body)["reason"]) for r in receiver.requests)
    assert bodies[0] == ("exits", "BackoffLimitExceeded")
    assert bodies[1][0] == "refused" and bodies[1][1]
    assert bodies[2] == ("slow", "DeadlineExceeded")
    assert not NotificationDelivery.objects.filter(run__service=cancelled).exists()
