"""deploy/supervisor_reaper.py, spoken to as supervisord does: on an event it
stops the processes of its state directory whose process-group leader died,
and leaves every other process alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REAPER = REPO / "deploy" / "supervisor_reaper.py"


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def group_with_child(state: str) -> tuple[subprocess.Popen[str], int]:
    """A process-group leader (bash) with a child (sleep), both marked with `state`."""
    leader = subprocess.Popen(
        ["bash", "-c", "sleep 300 & echo $!; wait"],
        env={"PATH": "/usr/bin:/bin", "K8X_SUPERVISED": state},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert leader.stdout is not None
    return leader, int(leader.stdout.readline())


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_orphans_of_a_dead_leader_are_stopped_others_kept(tmp_path: Path, cleanup: list[int]) -> None:
    state = str(tmp_path / "state")
    # Killed leader: its child is what a crashed program leaves behind.
    dead_leader, orphan = group_with_child(state)
    # A running program and its child: untouched.
    live_leader, live_child = group_with_child(state)
    # Another state directory's orphan (another `make up`): untouched.
    other_leader, other_orphan = group_with_child(state + "-other")
    cleanup += [orphan, live_leader.pid, live_child, other_orphan]
    for leader in (dead_leader, other_leader):
        leader.kill()
        leader.wait()
    assert alive(orphan) and alive(other_orphan)

    reaper = subprocess.Popen(
        [sys.executable, str(REAPER), "--state-dir", state],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reaper.stdin is not None and reaper.stdout is not None and reaper.stderr is not None
    try:
        assert reaper.stdout.readline() == b"READY\n"
        payload = b"processname:worker groupname:worker from_state:RUNNING expected:0 pid:1"
        header = (
            "ver:3.0 server:supervisor serial:1 pool:supervisor-reaper poolserial:1 "
            f"eventname:PROCESS_STATE_EXITED len:{len(payload)}\n"
        )
        reaper.stdin.write(header.encode() + payload)
        reaper.stdin.flush()
        assert reaper.stdout.read(len(b"RESULT 2\nOK")) == b"RESULT 2\nOK"
        deadline = time.monotonic() + 10
        while alive(orphan) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(orphan), "the orphan of the killed leader still runs"
        assert alive(live_leader.pid) and alive(live_child), "a running program was touched"
        assert alive(other_orphan), "another state directory's process was touched"
        assert reaper.stdout.readline() == b"READY\n"
    finally:
        reaper.stdin.close()  # EOF: supervisord is gone, the listener ends
        assert reaper.wait(timeout=10) == 0
    assert f"SIGTERM to pid {orphan}" in reaper.stderr.read().decode()
    live_leader.kill()
    live_leader.wait()
