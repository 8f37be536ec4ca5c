"""A real K8X for the examples: the event bridge (this test's Django on the pod
bridge address, where pods post follow-up events), Kafka topics and a hub thread,
the watcher, rqworker processes, and a project on the local cluster. The fixtures
come from tests/k8x_core/runs/conftest.py; this adds the example images and one
handle on all of it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from k8x_core.events.apikeys import apikey_create
from k8x_core.models import TERMINAL_STATUSES, Project, Run
from tests.k8x_core.runs.conftest import (  # noqa: F401  (fixtures)
    REPO,
    bridge,
    hub,
    process_env,
    project,
    start_watcher,
    start_worker,
    topics,
    watcher,
)


@pytest.fixture(scope="session")
def example_images(kube_cluster: Any) -> str:
    """`make examples` (examples/build.sh): a no-op when warm; its output lists the image refs."""
    proc = subprocess.run(["examples/build.sh"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@dataclass
class K8x:
    url: str  # the web process, e.g. http://10.244.0.1:PORT
    project: Project
    api_key: str
    env: dict[str, str]  # for manage.py processes: this test's database and queue
    hub: Any

    def wait_trigger(self, event_type: str, timeout: float = 30) -> None:
        """Until the hub has loaded a trigger for ``event_type``: it reloads its index within
        about a second of a change, and an event that arrives before that is unmatched."""
        deadline = time.monotonic() + timeout
        while self.hub.index is None or event_type not in self.hub.index.exact:
            assert time.monotonic() < deadline, f"the hub never loaded a trigger for {event_type}"
            time.sleep(0.1)

    def manage(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        req = urllib.request.Request(  # noqa: S310  (this test's own server)
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        text = raw.decode()
        return status, json.loads(text) if text.startswith(("{", "[")) else text

    def send(self, event_type: str, payload: Any) -> str:
        """POST /api/events/simple; returns the correlation id."""
        status, answer = self.request(
            "POST",
            "/api/events/simple",
            {"event_type": event_type, "event_source": "/tests/examples", "payload": payload},
        )
        assert status == 202, answer
        return str(answer["correlation_id"])

    def wait_runs(self, cid: str, count: int, timeout: float = 300) -> list[Run]:
        """The flow's runs once ``count`` of them exist and all have ended."""
        deadline = time.monotonic() + timeout
        while True:
            runs = list(Run.objects.filter(correlation_id=cid).select_related("service").order_by("created_at"))
            if len(runs) >= count and all(r.status in TERMINAL_STATUSES for r in runs):
                return runs
            if time.monotonic() > deadline:
                pytest.fail(f"flow {cid}: {[(r.service.name, r.status, r.reason, r.message) for r in runs]}")
            time.sleep(0.3)


def log_json(log: str) -> list[dict[str, Any]]:
    """The JSON lines of a stored log (each line is "<RFC 3339 timestamp> <text>")."""
    lines = []
    for line in log.splitlines():
        _, _, text = line.partition(" ")
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


@pytest.fixture
def k8x(
    example_images: str,
    project: Project,  # noqa: F811
    bridge: str,  # noqa: F811
    hub: Any,  # noqa: F811
    watcher: Any,  # noqa: F811
    start_worker: Callable[..., Any],  # noqa: F811
    queue_name: str,
) -> K8x:
    start_worker()
    _, raw = apikey_create(project=project, name="examples")
    return K8x(
        url=bridge.removesuffix("/api/events"), project=project, api_key=raw, env=process_env(queue_name), hub=hub
    )
