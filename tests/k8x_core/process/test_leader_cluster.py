"""Leader election on the real cluster: two electors, exactly one holds the Lease; a
released Lease passes at once; a holder killed with -9 is replaced within the lease
duration; a holder cut off from the API server stops acting before another can start.

Each test has a lease namespace of its own and a short lease duration (4 s: renew
deadline 2.67 s, retry period 0.53 s)."""

from __future__ import annotations

import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from k8x_core import kube
from k8x_core.process.health import ProcessHealth
from k8x_core.process.leader import LeaderElector, LeaseRecord, leader_loop, lease_timings
from k8x_core.watch.watcher import Watcher
from tests.cluster_fixtures import admin_lease_namespace_create, admin_namespace_delete
from tests.ports import free_port

from .procs import (
    TcpProxy,
    api_server_address,
    get_json,
    kubeconfig_via,
    metric,
    process_env,
    start,
    stop,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

DURATION = 4
RENEW_DEADLINE, RETRY = lease_timings(DURATION)
SCHEDULER_LEADS = 'k8x_leader{role="scheduler"}'


@pytest.fixture
def lease_ns(settings: Any, kube_cluster: Any, kube_api: Any) -> Iterator[str]:
    """A namespace of the test's own where K8X's identity may hold Leases (and only that)."""
    settings.KUBECONFIG = kube_cluster.kubeconfig
    kube.api_client_reset()
    name = f"k8x-test-lease-{secrets.token_hex(3)}"
    admin_lease_namespace_create(kube_api, name, kube.identity_subject())
    yield name
    admin_namespace_delete(kube_api, name)


def holder(namespace: str, name: str) -> LeaseRecord:
    lease = kube.lease_get(namespace=namespace, name=name, deadline_seconds=5, timeout=(2.0, 5.0))
    return LeaseRecord.from_spec(lease["spec"])


def elector(namespace: str, identity: str, name: str = "k8x-test") -> LeaderElector:
    return LeaderElector(role="test", name=name, namespace=namespace, identity=identity, duration_seconds=DURATION)


def test_two_electors_exactly_one_holds_and_a_released_lease_passes_at_once(lease_ns: str) -> None:
    a, b = elector(lease_ns, "elector-a"), elector(lease_ns, "elector-b")
    a.start()
    b.start()
    try:
        wait_for(lambda: a.is_leader() or b.is_leader(), timeout=10, what="a leader")
        # Over several lease durations, never both and never none.
        end = time.monotonic() + 2.5 * DURATION
        while time.monotonic() < end:
            assert a.is_leader() != b.is_leader()
            time.sleep(0.05)
        leader, standby = (a, b) if a.is_leader() else (b, a)
        assert holder(lease_ns, "k8x-test").holder == leader.identity
        assert standby.ready_problems() == {}  # a standby that reaches the API is ready
        t0 = time.monotonic()
        leader.stop(release=True)
        assert not leader.is_leader()
        wait_for(standby.is_leader, timeout=DURATION, what="the standby to take the released lease", interval=0.02)
        took = time.monotonic() - t0
        record = holder(lease_ns, "k8x-test")
        assert record.holder == standby.identity and record.transitions == 1
        # Released: taken at the standby's next try, not after the lease duration.
        assert took < RETRY * 1.2 + 1.0, f"took {took:.2f}s"
    finally:
        a.stop(release=False)
        b.stop(release=False)


def _scheduler(tmp_path: Path, ns: str, who: str, **env: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = tmp_path / f"{who}.log"
    proc = start(
        ["k8x_scheduler", "--health-port", str(port)],
        log=log,
        env=process_env(
            K8X_LEADER_ELECTION="true",
            K8X_LEASE_NAMESPACE=ns,
            K8X_LEASE_DURATION_SECONDS=str(DURATION),
            K8X_POD_NAME=who,
            **env,
        ),
    )
    return proc, port, log


def test_kill_9_of_the_holder_hands_over_within_the_lease_duration(lease_ns: str, tmp_path: Path) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        a = _scheduler(tmp_path, lease_ns, "scheduler-a")
        b = _scheduler(tmp_path, lease_ns, "scheduler-b")
        procs += [a[0], b[0]]
        for proc, port, log in (a, b):
            wait_for(lambda p=port: get_json(p, "/readyz")[0] == 200, timeout=60, what="ready", proc=proc, log=log)
        wait_for(
            lambda: metric(a[1], SCHEDULER_LEADS) == 1.0 or metric(b[1], SCHEDULER_LEADS) == 1.0,
            timeout=10,
            what="a leading scheduler",
        )
        (lp, lport, llog), (sp, sport, slog) = (a, b) if metric(a[1], SCHEDULER_LEADS) == 1.0 else (b, a)
        leader_name = "scheduler-a" if lp is a[0] else "scheduler-b"
        standby_name = "scheduler-b" if lp is a[0] else "scheduler-a"
        end = time.monotonic() + 2 * DURATION
        while time.monotonic() < end:
            assert (metric(lport, SCHEDULER_LEADS), metric(sport, SCHEDULER_LEADS)) == (1.0, 0.0)
            time.sleep(0.1)
        assert holder(lease_ns, "k8x-scheduler").holder == leader_name
        # Only the holder acts: only its log shows scheduler passes starting.
        assert "scheduler running" in llog.read_text()
        assert "scheduler running" not in slog.read_text()

        t0 = time.monotonic()
        lp.send_signal(signal.SIGKILL)
        lp.wait(timeout=10)
        wait_for(
            lambda: metric(sport, SCHEDULER_LEADS) == 1.0,
            timeout=DURATION + 5,
            what="the standby to take over",
            proc=sp,
            log=slog,
            interval=0.02,
        )
        took = time.monotonic() - t0
        print(f"takeover after kill -9: {took:.2f}s (lease duration {DURATION}s, retry period {RETRY:.2f}s)")
        assert took <= DURATION + RETRY * 1.2 + 0.5, f"took {took:.2f}s"
        assert holder(lease_ns, "k8x-scheduler").holder == standby_name
        wait_for(lambda: "scheduler running" in slog.read_text(), timeout=5, what="the new leader's passes")
        sp.send_signal(signal.SIGTERM)
        assert sp.wait(timeout=20) == 0
        # Released on the way out.
        assert holder(lease_ns, "k8x-scheduler").holder == ""
    finally:
        stop(procs)


def test_a_holder_whose_renewals_fail_stops_acting_before_another_takes_over(
    lease_ns: str, tmp_path: Path, kube_cluster: Any
) -> None:
    # scheduler-a reaches the API server through a relay the test cuts; elector-b directly.
    proxy = TcpProxy(api_server_address(kube_cluster.kubeconfig))
    kubeconfig = tmp_path / "kubeconfig-via-proxy"
    kubeconfig_via(kube_cluster.kubeconfig, proxy.port, kubeconfig)
    procs: list[subprocess.Popen[bytes]] = []
    b = LeaderElector(
        role="scheduler-b", name="k8x-scheduler", namespace=lease_ns, identity="elector-b", duration_seconds=DURATION
    )
    try:
        proc, port, log = _scheduler(tmp_path, lease_ns, "scheduler-a", KUBECONFIG=str(kubeconfig))
        procs.append(proc)
        wait_for(lambda: metric(port, SCHEDULER_LEADS) == 1.0, timeout=60, what="scheduler-a leads", proc=proc, log=log)
        b.start()
        wait_for(lambda: b.connected, timeout=10, what="elector-b reads the lease")
        assert not b.is_leader()

        proxy.cut()
        t_cut = time.monotonic()
        a_stopped = b_leads = None
        while b_leads is None and time.monotonic() < t_cut + 3 * DURATION:
            now = time.monotonic()
            if a_stopped is None and metric(port, SCHEDULER_LEADS) == 0.0:
                a_stopped = now
            if b.is_leader():
                b_leads = now
            time.sleep(0.02)
        assert a_stopped is not None and b_leads is not None, (a_stopped, b_leads, log.read_text()[-2000:])
        print(
            f"renewals cut at 0: scheduler-a stopped acting at {a_stopped - t_cut:.2f}s, "
            f"elector-b took over at {b_leads - t_cut:.2f}s"
        )
        assert a_stopped < b_leads
        assert a_stopped - t_cut <= RENEW_DEADLINE + 0.5
        assert "stops leading" in log.read_text()
        # Cut off, it lives on as a standby: alive, not ready (it cannot reach the API).
        assert get_json(port, "/healthz")[0] == 200
        status, doc = get_json(port, "/readyz")
        assert status == 503 and "kubernetes" in doc["problems"]
        assert holder(lease_ns, "k8x-scheduler").holder == "elector-b"
    finally:
        b.stop(release=False)
        stop(procs)
        proxy.cut()


def test_a_watcher_whose_lease_is_taken_stops_at_once_and_resumes_when_it_is_back(lease_ns: str) -> None:
    watchers: list[Watcher] = []

    def watcher_create() -> Watcher:
        watchers.append(Watcher(namespace=lease_ns, follow_logs=False))
        return watchers[-1]

    e = elector(lease_ns, "watcher-a", name="k8x-watcher")
    stopping = threading.Event()

    def run() -> None:
        try:
            leader_loop(elector=e, actor_create=watcher_create, health=ProcessHealth(role="watcher"), stopping=stopping)
        finally:
            connection.close()

    loop = threading.Thread(target=run)
    loop.start()
    try:
        wait_for(lambda: watchers and watchers[0].synced["jobs"].is_set(), timeout=20, what="the leader's watcher")
        # Another holder writes the Lease (as a standby that took it over would).
        lease = kube.lease_get(namespace=lease_ns, name="k8x-watcher", deadline_seconds=5, timeout=(2.0, 5.0))
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {**lease["spec"], "holderIdentity": "thief", "renewTime": stamp, "acquireTime": stamp}
        kube.lease_replace(
            namespace=lease_ns,
            name="k8x-watcher",
            spec=spec,
            resource_version=lease["metadata"]["resourceVersion"],
            deadline_seconds=5,
            timeout=(2.0, 5.0),
        )
        t0 = time.monotonic()
        wait_for(lambda: watchers[0].stopping.is_set(), timeout=5, what="the watcher to stop", interval=0.02)
        took = time.monotonic() - t0
        assert took < RETRY * 1.2 + 0.5, f"took {took:.2f}s"
        assert not e.is_leader() and len(watchers) == 1
        # The thief never renews: after the lease duration the process leads again, with a fresh watcher.
        wait_for(lambda: len(watchers) == 2, timeout=DURATION + 3, what="a new watcher after re-acquiring")
        assert e.is_leader() and not watchers[1].stopping.is_set()
    finally:
        stopping.set()
        loop.join(timeout=20)
    assert not loop.is_alive()
    assert all(w.stopping.is_set() for w in watchers)
    assert holder(lease_ns, "k8x-watcher").holder == ""
