"""deploy/k8x.sh: `make up`, `make status`, `make down` of the embedded mode.

Every deploy/Procfile entry is one the script starts, stops and reports (a name
the parser skipped would be a process `make up` silently never runs), and the
supervisor it starts them under keeps them running: a killed process is back
within seconds, `make up` returns whatever its output is piped to, and
`down` leaves no K8X process behind.

The embedded test runs its own `make up` beside any developer's: its own
K8X_STATE_DIR (a tmp dir, so its own supervisor), web and hub-metrics ports,
SQLite database, Redis database number (so its workers never take a launch
of the developer's `k8x` queue), Kafka topic and consumer group, the running
cluster's KUBECONFIG (no cluster build) and K8X_SERVICES=none (the shared
services are used, never started or stopped).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from tests.cluster_fixtures import KubeCluster
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
K8X_SH = REPO / "deploy" / "k8x.sh"
SUPERVISORCTL = REPO / ".venv" / "bin" / "supervisorctl"
RESTART_LIMIT_SECONDS = 10.0
# A Redis database no other test or `make up` uses (they all use 0).
TEST_REDIS_DB = 11


def procfile_entries() -> dict[str, str]:
    entries = {}
    for line in (REPO / "deploy" / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, command = line.partition(":")
            assert sep and command.strip(), f"Procfile line without 'name: command': {line!r}"
            assert re.fullmatch(r"[a-z][a-z0-9_-]*", name), f"Procfile name {name!r}"
            entries[name] = command.strip()
    return entries


def procfile_names() -> list[str]:
    return list(procfile_entries())


def test_status_reports_every_procfile_entry(tmp_path: Path) -> None:
    names = procfile_names()
    assert {"web", "hub", "worker", "watcher", "scheduler", "reconciler"} <= set(names)
    out = subprocess.run(
        ["bash", str(K8X_SH), "status"],
        env={"PATH": "/usr/bin:/bin", "K8X_STATE_DIR": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "supervisor: not running" in out
    reported = [line.split(":", 1)[0] for line in out.splitlines() if line.endswith(": stopped")]
    assert reported[: len(names)] == names


# --- the embedded mode, supervised -------------------------------------------


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Embedded:
    state_dir: Path
    env: dict[str, str]
    web_port: int

    @property
    def conf(self) -> Path:
        return self.state_dir / "supervisord.conf"

    def k8x_sh(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(K8X_SH), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pid(self, name: str) -> int:
        """The pid the supervisor has for this program (0: none)."""
        out = subprocess.run(
            [str(SUPERVISORCTL), "-c", str(self.conf), "pid", name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
        return int(out) if out.isdigit() else 0


def _proc_read(pid: int, what: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    status = _proc_read(pid, "status").decode(errors="replace")
    return bool(status) and "\nState:\tZ" not in status


def cmdline(pid: int) -> str:
    return _proc_read(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace").strip()


def pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return 0


def dead(pid: int) -> bool:
    return not alive(pid)


def group_gone(state_dir: Path, group: int) -> bool:
    return not any(pgid(pid) == group for pid in processes_of(state_dir))


def restarted(emb: Embedded, name: str, old: int) -> bool:
    new = emb.pid(name)
    return new not in (0, old) and alive(new)


def processes_of(state_dir: Path) -> dict[int, str]:
    """Live processes of this test's K8X: whose command line names its state
    directory (supervisord, the reaper), or whose command line or working
    directory is in this checkout and whose environment names the state
    directory (the programs and their children). A developer's own `make up`
    from the same checkout has another state directory and is not counted."""
    state = str(state_dir)
    repo = str(REPO)
    markers = {f"K8X_STATE_DIR={state}".encode(), f"K8X_SUPERVISED={state}".encode()}
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        cmd = cmdline(pid)
        if not cmd or not alive(pid):
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        in_checkout = repo in cmd or cwd == repo or cwd.startswith(repo + "/")
        environ = set(_proc_read(pid, "environ").split(b"\0"))
        if state in cmd or (in_checkout and markers & environ):
            found[pid] = cmd
    return found


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> float:
    """Seconds until predicate() held; fails the test after timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - start


@pytest.fixture
def embedded(tmp_path: Path, kube_cluster: KubeCluster) -> Iterator[Embedded]:
    state_dir = (tmp_path / "state").resolve()
    state_dir.mkdir()
    web_port = free_port()
    tag = uuid.uuid4().hex[:8]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
        "K8X_STATE_DIR": str(state_dir),
        "K8X_WEB_PORT": str(web_port),
        # Health ports base + 1 … 6: a free port and the ones after it, not a running make up's.
        "K8X_HEALTH_PORT_BASE": str(free_port()),
        "DATABASE_URL": f"sqlite:///{state_dir}/k8x.sqlite3",
        "REDIS_URL": f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
        "K8X_EVENTS_TOPIC": f"k8x-test-supervise-{tag}",
        "K8X_DLQ_TOPIC": f"k8x-test-supervise-{tag}.dlq",
        "K8X_HUB_GROUP": f"k8x-test-supervise-{tag}",
        "KUBECONFIG": kube_cluster.kubeconfig,
        "K8X_SERVICES": "none",
    }
    emb = Embedded(state_dir=state_dir, env=env, web_port=web_port)
    yield emb
    # Whatever the test did, stop this test's K8X (never the shared services),
    # then anything still found.
    emb.k8x_sh("down", "--keep-services", timeout=180)
    for pid in processes_of(state_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def running_pids(emb: Embedded, names: list[str]) -> dict[str, int]:
    """Program -> pid from `k8x.sh status`, asserting every program is RUNNING."""
    out = emb.k8x_sh("status", timeout=60).stdout
    pids = {}
    for name in names:
        match = re.search(rf"^{re.escape(name)}: RUNNING +pid (\d+),", out, re.MULTILINE)
        assert match, f"{name} is not RUNNING in `k8x.sh status`:\n{out}"
        pids[name] = int(match.group(1))
    return pids


def assert_real_processes(pids: dict[str, int], entries: dict[str, str]) -> None:
    """Each pid is the Procfile command itself, not a wrapper around it."""
    for name, pid in pids.items():
        assert alive(pid), f"{name}: pid {pid} is not alive"
        # Every literal word of the command (not what the shell expands, e.g. $K8X_WEB_BIND or $((…))).
        words = [w for w in entries[name].split() if not any(c in w for c in "$()=+") and w != "env"]
        running = cmdline(pid)
        assert all(w in running for w in words), f"{name}: pid {pid} runs {running!r}, not {entries[name]!r}"
        assert "bash" not in cmdline(pid).split()[0], f"{name}: pid {pid} is a shell wrapper: {cmdline(pid)!r}"


def assert_one_of_each(emb: Embedded, pids: dict[str, int]) -> None:
    """Every process of this K8X is supervisord, the reaper, or in the
    process group of one of the programs' current pids: nothing started twice."""
    leaders = set(pids.values())
    for pid, cmd in processes_of(emb.state_dir).items():
        if "supervisord -c" in cmd or "supervisor_reaper.py" in cmd:
            continue
        assert pgid(pid) in leaders, f"pid {pid} ({cmd}) belongs to no current program: {pids}"
    supervisors = [cmd for cmd in processes_of(emb.state_dir).values() if "supervisord -c" in cmd]
    assert len(supervisors) == 1, supervisors


@pytest.mark.cluster
def test_supervised_processes_restart_and_stop(embedded: Embedded) -> None:
    emb = embedded
    entries = procfile_entries()
    names = list(entries)

    # (2) `make up | cat` returns (no daemon keeps the pipe open) and prints what it did.
    start = time.monotonic()
    try:
        up = subprocess.run(
            ["bash", "-c", "make up 2>&1 | cat"],
            env=emb.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`make up | cat` did not return in 300 s (a process holds the pipe):\n{exc.stdout!r}")
    up_seconds = time.monotonic() - start
    assert up.returncode == 0, up.stdout + up.stderr
    for expected in (
        f"console:    http://127.0.0.1:{emb.web_port}",
        "admin login: admin",
        "kafka:      127.0.0.1:9092",
        f"kubeconfig: {emb.env['KUBECONFIG']}",
        f"logs:       {emb.state_dir}/logs/",
    ):
        assert expected in up.stdout, f"{expected!r} missing in `make up` output:\n{up.stdout}"
    print(f"make up | cat returned in {up_seconds:.1f} s")
    assert (emb.state_dir / "run" / "supervisor.sock").is_socket()
    for name in names:
        assert (emb.state_dir / "logs" / f"k8x-{name}.log").is_file(), f"no log for {name}"

    pids = running_pids(emb, names)
    assert_real_processes(pids, entries)

    # A second `make up` starts nothing twice.
    again = emb.k8x_sh("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert running_pids(emb, names) == pids
    assert_one_of_each(emb, pids)

    # (1) kill -9 of any supervised process: back with a new pid within 10 s,
    # and nothing of the killed process (its children) is left running.
    restart_seconds = {}
    for name in names:
        old = pids[name]
        os.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(f"{name}: pid {old} gone", partial(dead, old), timeout=5, interval=0.02)
        back = partial(restarted, emb, name, old)
        wait_for(f"{name} back after kill -9 of pid {old}", back, timeout=RESTART_LIMIT_SECONDS)
        restart_seconds[name] = time.monotonic() - killed_at
        assert restart_seconds[name] < RESTART_LIMIT_SECONDS
        group_left = partial(group_gone, emb.state_dir, old)
        wait_for(f"{name}: processes of the killed group {old}", group_left, timeout=15, interval=0.5)
    print("restart after kill -9 (s): " + ", ".join(f"{n} {s:.2f}" for n, s in restart_seconds.items()))
    new_pids = {}

    def all_running() -> bool:
        try:
            new_pids.update(running_pids(emb, names))
        except AssertionError:
            return False
        return True

    wait_for("every program RUNNING again", all_running, timeout=30, interval=1)
    assert not set(new_pids.values()) & set(pids.values())
    assert_real_processes(new_pids, entries)
    assert_one_of_each(emb, new_pids)

    # The supervisor itself killed: the next `make up` stops what it left and
    # starts each program once.
    supervisords = [p for p, cmd in processes_of(emb.state_dir).items() if "supervisord -c" in cmd]
    assert len(supervisords) == 1, supervisords
    os.kill(supervisords[0], signal.SIGKILL)
    wait_for("supervisord gone", partial(dead, supervisords[0]), timeout=5)
    status = emb.k8x_sh("status", timeout=60).stdout
    assert "supervisor: not running" in status and "left over" in status, status
    up3 = emb.k8x_sh("up")
    assert up3.returncode == 0, up3.stdout + up3.stderr
    pids3 = running_pids(emb, names)
    assert not any(alive(p) for p in new_pids.values()), "a process of the killed supervisor still runs"
    assert_one_of_each(emb, pids3)

    # (3) down --keep-services: no process of this K8X is left, the shared services still run.
    down = emb.k8x_sh("down", "--keep-services", timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    for name in names:
        assert f"{name}: stopped" in down.stdout, down.stdout
    left = processes_of(emb.state_dir)
    assert not left, f"left after down: {left}"
    assert "supervisor: not running" in emb.k8x_sh("status", timeout=60).stdout
    assert port_open(6379) and port_open(9092), "down --keep-services stopped a shared service"
