"""A container that writes one 100 MB line, followed by ``manage.py k8x_watch`` on
the real cluster: the watcher's memory stays bounded (its RSS is sampled from
/proc), the stored log is capped and marked truncated, and no stored line is
longer than K8X_LOG_LINE_MAX_BYTES."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from k8x_core.models import Run, RunStatus, Service
from k8x_core.runs import launch
from k8x_core.runs.logs import run_log_size, run_log_text
from tests.k8x_core.runs.conftest import REPO, process_env, send_event, wait_run

pytestmark = pytest.mark.cluster

RSS_LIMIT = 200 * 1024 * 1024
LINE_BYTES = 100_000_000


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """A process's resident set (VmRSS) or its high-water mark (VmHWM), in bytes."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(f"{field}:"):
            return int(row.split()[1]) * 1024
    return 0


class RssSampler(threading.Thread):
    """The peak RSS of a process, sampled every 50 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
                self.samples += 1
            except OSError:
                return


def test_one_100mb_line_keeps_the_watcher_small_and_the_log_capped(
    make_service: Callable[..., Service], queue_name: str, settings: object
) -> None:
    service = make_service(
        "oneline",
        # The pause first lets the watcher see the pod running and follow it from the start:
        # 100 MB are written in about a second, and a log read only after the end may find
        # the kubelet's freshly rotated (empty) file.
        command=[
            "sh",
            "-c",
            f"sleep 3; echo begin; head -c {LINE_BYTES} /dev/zero | tr '\\000' a; echo; echo end; sleep 1",
        ],
        timeout_seconds=300,
    )
    watcher = subprocess.Popen(
        [sys.executable, "manage.py", "k8x_watch", "--namespace", service.project.namespace],
        cwd=REPO,
        env=process_env(queue_name),
    )
    sampler = RssSampler(watcher.pid)
    sampler.start()
    try:
        (run,) = send_event("com.test.oneline")
        launch.run_launch(run_id=run.pk)
        done = wait_run(run.pk, timeout=600)
        time.sleep(1)
        # The kernel's high-water mark catches a peak between two samples.
        sampler.peak = max(sampler.peak, rss_bytes(watcher.pid, "VmHWM"))
    finally:
        sampler.done.set()
        sampler.join(timeout=5)
        watcher.terminate()
        watcher.wait(timeout=30)
    assert done.status == RunStatus.SUCCEEDED, (done.reason, done.message)
    assert sampler.samples > 20
    print(f"watcher peak RSS {sampler.peak / 2**20:.0f} MiB over {sampler.samples} samples")
    assert sampler.peak < RSS_LIMIT, f"watcher RSS {sampler.peak / 2**20:.0f} MiB"

    cap = settings.K8X_LOG_CAP_BYTES  # type: ignore[attr-defined]
    line_max = settings.K8X_LOG_LINE_MAX_BYTES  # type: ignore[attr-defined]
    text = run_log_text(done.pk)
    assert 0.9 * cap <= len(text.encode()) <= cap
    assert run_log_size(done.pk) == len(text.encode())
    assert Run.objects.get(pk=done.pk).log_truncated
    lines = text.splitlines()
    assert max(len(line.encode()) for line in lines) <= line_max
    assert len(lines) >= cap // line_max
    # Every piece of the long line says it goes on, except where the kubelet rotated the
    # container's log (every 10 MiB by default): a rotation ends a partial record, which
    # reads as a line break. The first line is "begin" unless the log was followed from
    # after a rotation (a follower that starts late reads the current file only).
    pieces = [line for line in lines if " begin" not in line]
    unmarked = [line[-40:] for line in pieces if not line.endswith(" […]")]
    rotations = LINE_BYTES // (10 * 2**20) + 1
    assert len(unmarked) <= rotations, (len(pieces), unmarked[:5])
    assert len(pieces) - len(unmarked) >= cap // line_max - rotations
