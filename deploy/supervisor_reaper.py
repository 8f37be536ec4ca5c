"""supervisord event listener of the embedded mode: stops what a dead program left behind.

supervisord starts each program as the leader of its own process group and,
on `stop`, signals the whole group. When a program dies by itself (a crash,
`kill -9`), its children are not signalled: rqworker's scheduler process, for
one, would run on beside the restarted worker, holding the scheduler lock.
On every program exit (and every 5 s) this listener finds the processes of
this state directory (K8X_SUPERVISED=<state dir> in their environment) whose
process-group leader is gone, sends them SIGTERM, and SIGKILL 10 s later.
A restarted program leads a group of its own, so it is never touched.

Standard library only; speaks supervisord's event listener protocol on
stdin/stdout and logs to stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

MARKER_VARIABLE = "K8X_SUPERVISED"
KILL_AFTER_SECONDS = 10.0


def _log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} k8x-reaper {message}\n")
    sys.stderr.flush()


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not any(line.startswith("State:") and "Z" in line.split()[1:2] for line in status.splitlines())


def orphans_find(*, state_dir: str, proc: Path = Path("/proc")) -> list[int]:
    """Pids marked with this state directory whose process-group leader is gone."""
    marker = f"{MARKER_VARIABLE}={state_dir}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            pgid = os.getpgid(pid)
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile, or not ours to read
        if pgid != pid and not _alive(pgid) and _alive(pid):
            found.append(pid)
    return found


class Reaper:
    def __init__(self, *, state_dir: str) -> None:
        self.state_dir = state_dir
        self.terminated: dict[int, float] = {}  # pid -> when SIGTERM was sent

    def sweep(self) -> None:
        now = time.monotonic()
        for pid in orphans_find(state_dir=self.state_dir):
            if pid not in self.terminated:
                self._signal(pid, signal.SIGTERM)
                self.terminated[pid] = now
        for pid, since in list(self.terminated.items()):
            if not _alive(pid):
                del self.terminated[pid]
            elif now - since >= KILL_AFTER_SECONDS:
                self._signal(pid, signal.SIGKILL)

    def _signal(self, pid: int, signum: signal.Signals) -> None:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            os.kill(pid, signum)
        except OSError:
            return
        _log(f"{signum.name} to pid {pid} ({cmdline.strip()[:100]}): its program is gone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True, help="K8X_STATE_DIR, as in the programs' K8X_SUPERVISED")
    args = parser.parse_args(argv)
    reaper = Reaper(state_dir=args.state_dir)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        stdout.write(b"READY\n")
        stdout.flush()
        line = stdin.readline()
        if not line:
            return 0  # supervisord is gone
        headers = dict(field.split(b":", 1) for field in line.split())
        stdin.read(int(headers[b"len"]))
        try:
            reaper.sweep()
        except OSError as exc:
            # /proc read errors must not stop the listener (supervisord would restart it anyway).
            _log(f"sweep failed: {exc}")
        stdout.write(b"RESULT 2\nOK")
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
