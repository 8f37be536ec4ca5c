"""The in-cluster K8X scaled out (issue 17's last acceptance points), on the
release `make deploy` manages (`k8x` in `k8x-system`), installed once for this
module with 2 hub and 2 watcher replicas and removed at the end:

- a run's log reaches a browser (headless Chromium) live over the in-cluster
  websocket, logged into the console on the NodePort `10.244.0.1:30080`;
- a 2,000-event stream sent through the web Service's batch API becomes
  exactly one run per event, and both hubs consumed part of it (the events
  topic has 4 partitions: deploy.sh creates it);
- only the Lease holder of the watchers acts; the other reports standby, and
  when the leader pod is force-deleted another watcher takes the Lease within
  the lease duration (+ margin; in ~1-2 s, as the dying leader releases it)
  and a run started before the kill still finishes; a *hung* leader (SIGSTOP
  from the host, then force-deleted: it never releases) loses the Lease only
  after one lease duration (~15-20 s).

The 2,000 events match a *paused* service: the hubs record one queued run per
event, the workers leave them queued, so the cluster never starts 2,000 Jobs.
Measured figures are printed (pytest -s shows them)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.cluster_fixtures import KubeCluster
from tests.deploy.helm.conftest import REPO, Runner, kubectl_runner
from tests.deploy.helm.test_deploy_e2e import NS, deploy_sh, poll

pytestmark = [pytest.mark.cluster, pytest.mark.kafka, pytest.mark.timeout(1500)]

DB_URL = "postgresql://k8x:k8x@127.0.0.1:55432/k8x_incluster"
EVENTS = 2000
BATCH = 100  # K8X_MAX_BATCH_EVENTS
LEASE_SECONDS = 15  # K8X_LEASE_DURATION_SECONDS (default)
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")
JOB_YAML = """\
apiVersion: batch/v1
kind: Job
spec:
  ttlSecondsAfterFinished: 30
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: localhost:5000/k8x/busybox:1
          command: ["sh", "-c", "{script}"]
"""
# `tick`: lines over ~12 s, so a page opened while it runs gets them live.
TICK = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo scale-tick-$i; sleep 1; done"


@dataclass
class Release:
    base: str
    project: str
    headers: dict[str, str]
    kubectl: Runner
    user: str
    password: str
    admin_kubeconfig: str


def _setup_script(project: str) -> str:
    """Two services applied from inside the web pod: `bulk` (busybox `true`, then paused)
    and `tick`; prints an API key last."""
    parts = ["set -e; d=$(mktemp -d)"]
    for name, script in (("bulk", "true"), ("tick", TICK)):
        manifest = (
            f'{{"name": "{name}", "type": "k8x_job", "description": "scale", '
            f'"trigger_events": ["com.k8x.scale.{name}"]}}'
        )
        parts += [
            f"mkdir $d/{name}",
            f"printf '%s' '{JOB_YAML.format(script=script)}' > $d/{name}/deployment.yaml",
            f"printf '%s' '{manifest}' > $d/{name}/manifest.json",
        ]
    pause = (
        "from k8x_core.models import Service; "
        f"assert Service.objects.filter(project__slug='{project}', name='bulk').update(paused=True) == 1"
    )
    parts += [
        f"python3 manage.py k8x_apply $d --project {project} >/dev/null",
        f'python3 manage.py shell -c "{pause}"',
        f"python3 manage.py k8x_apikey --project {project} --name scale 2>/dev/null",
    ]
    return "; ".join(parts)


@pytest.fixture(scope="module")
def release(kube_cluster: KubeCluster) -> Iterator[Release]:
    kubectl = kubectl_runner(kube_cluster.admin_kubeconfig)
    project = f"scale-{uuid.uuid4().hex[:6]}"
    previous = os.environ.get("K8X_HELM_ARGS")
    os.environ["K8X_HELM_ARGS"] = "--set hub.replicas=2 --set watcher.replicas=2"
    t0 = time.monotonic()
    try:
        out = deploy_sh("deploy", kube_cluster.admin_kubeconfig)
    finally:
        if previous is None:
            os.environ.pop("K8X_HELM_ARGS", None)
        else:
            os.environ["K8X_HELM_ARGS"] = previous
    print(f"\nmake deploy (2 hubs, 2 watchers) took {time.monotonic() - t0:.0f}s")
    console = re.search(r"console:\s+(http://\S+)", out)
    assert console, out
    assert "topic k8x-incluster.events:" in out, out
    user, password = f"scale-{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    try:
        res = kubectl("-n", NS, "exec", "-i", "deploy/k8x-web", "--", "sh", "-c", _setup_script(project))
        assert res.returncode == 0, res.stderr
        key = res.stdout.strip().splitlines()[-1]
        res = kubectl(
            "-n",
            NS,
            "exec",
            "deploy/k8x-web",
            "--",
            "env",
            f"DJANGO_SUPERUSER_PASSWORD={password}",
            "python3",
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            user,
            "--email",
            f"{user}@example.invalid",
        )
        assert res.returncode == 0, res.stderr
        yield Release(
            console.group(1), project, {"X-API-Key": key}, kubectl, user, password, kube_cluster.admin_kubeconfig
        )
    finally:
        # The project's rows (2,000 events and their runs) go with it; the database stays.
        cleanup = (
            "from k8x_core.models import Event, Project; from django.contrib.auth.models import User; "
            f"Event.objects.filter(project__slug='{project}').delete(); "
            f"Project.objects.filter(slug='{project}').delete(); User.objects.filter(username='{user}').delete()"
        )
        kubectl("-n", NS, "exec", "deploy/k8x-web", "--", "python3", "manage.py", "shell", "-c", cleanup, timeout=300)
        deploy_sh("undeploy", kube_cluster.admin_kubeconfig)
        kubectl("delete", "namespace", f"k8x-ic-{project}", "--ignore-not-found", "--wait=false")


def _db(sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


RUNS_OF = """
SELECT r.id::text, r.status, e.ce_id FROM k8x_core_run r
JOIN k8x_core_service s ON s.id = r.service_id JOIN k8x_core_project p ON p.id = s.project_id
LEFT JOIN k8x_core_event e ON e.id = r.event_id
WHERE p.slug = %s AND s.name = %s
"""


def _send_tick(rel: Release) -> str:
    sent = requests.post(
        f"{rel.base}/api/events/simple",
        json={"event_type": "com.k8x.scale.tick", "event_source": "/scale", "payload": {}},
        headers=rel.headers,
        timeout=10,
    )
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"])


def _run_of(rel: Release, ce_id: str, statuses: tuple[str, ...], timeout: float) -> str:
    def find() -> str | None:
        rows = [r for r in _db(RUNS_OF, rel.project, "tick") if r[2] == ce_id]
        return rows[0][0] if rows and rows[0][1] in statuses else None

    return str(poll(f"the tick run of {ce_id} to be {statuses}", find, timeout=timeout))


def _pods(rel: Release, component: str) -> dict[str, str]:
    """name -> pod IP of the Running, not terminating pods of a component."""
    res = rel.kubectl(
        "-n",
        NS,
        "get",
        "pods",
        "-l",
        f"app.kubernetes.io/instance=k8x,app.kubernetes.io/component={component}",
        "-o",
        "jsonpath={range .items[?(@.status.phase=='Running')]}{.metadata.name} {.status.podIP} "
        "{.metadata.deletionTimestamp}{'\\n'}{end}",
    )
    assert res.returncode == 0, res.stderr
    found = {}
    for line in res.stdout.splitlines():
        fields = line.split()
        if len(fields) == 2:
            found[fields[0]] = fields[1]
    return found


def _metric(ip: str, name: str, labels: str = "") -> float:
    """Sum of a metric's samples on a pod's health port (9100), reached over the bridge.
    A pod is Running before its process listens (a replacement pod on a loaded node):
    a refused connection is tried again for up to 60 s."""
    deadline = time.monotonic() + 60
    while True:
        try:
            text = requests.get(f"http://{ip}:9100/metrics", timeout=5).text
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and labels in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _holder(rel: Release) -> str:
    res = rel.kubectl("-n", NS, "get", "lease", "k8x-watcher", "-o", "jsonpath={.spec.holderIdentity}")
    return res.stdout.strip() if res.returncode == 0 else ""


@pytest.mark.browser
def test_run_log_reaches_the_browser_over_the_in_cluster_websocket(release: Release) -> None:
    # Imported here as tests/browser/conftest.py does: Playwright only where a browser is driven.
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    rel = release
    frames: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(str(f))))
            page.goto(f"{rel.base}/login/")
            page.fill("input[name=username]", rel.user)
            page.fill("input[name=password]", rel.password)
            page.click("form [type=submit]")
            page.wait_for_load_state()
            assert "/login/" not in page.url, page.content()[:2000]

            run_id = _run_of(rel, _send_tick(rel), ("running",), timeout=120)
            page.goto(f"{rel.base}/runs/{run_id}/")
            log = page.locator("#log")
            # Opened while the run runs: the page did not render a stored log.
            assert log.get_attribute("data-terminal") == "0"
            page.wait_for_function(
                "document.getElementById('log').textContent.includes('scale-tick-12')", timeout=90_000
            )
            text = log.text_content() or ""
            state = page.locator("#log-state").text_content() or ""
        finally:
            browser.close()
    assert all(f"scale-tick-{i}" in text for i in range(1, 13)), text
    # The lines came over the websocket (not the page's HTML), some of them while running.
    ws_text = "".join(frames)
    assert "scale-tick-12" in ws_text, ws_text[:2000]
    assert "Live" in state or "Finished" in state, state
    print(f"\nbrowser: run {run_id} log live over ws in {time.monotonic() - t0:.1f}s ({len(frames)} frames)")


def test_two_hubs_record_one_run_per_event(release: Release) -> None:
    rel = release
    hubs = _pods(rel, "hub")
    assert len(hubs) == 2, hubs
    before = {name: _metric(ip, "k8x_hub_events_total") for name, ip in hubs.items()}
    # The Kafka key is the event's subject (else its source): one subject per event spreads the
    # stream over the topic's partitions, so each hub's share is non-empty.
    ids = [f"scale-{uuid.uuid4().hex}" for _ in range(EVENTS)]
    t0 = time.monotonic()
    with requests.Session() as http:
        for start in range(0, EVENTS, BATCH):
            batch: list[dict[str, Any]] = [
                {
                    "specversion": "1.0",
                    "id": i,
                    "source": "/scale",
                    "type": "com.k8x.scale.bulk",
                    "subject": f"item-{n}",
                    "data": {"n": n},
                }
                for n, i in enumerate(ids[start : start + BATCH], start)
            ]
            resp = http.post(
                f"{rel.base}/api/events",
                json=batch,
                headers={**rel.headers, "Content-Type": "application/cloudevents-batch+json"},
                timeout=60,
            )
            assert resp.status_code == 202, resp.text[:500]
    sent_s = time.monotonic() - t0

    def all_runs() -> list[tuple[Any, ...]] | None:
        rows = _db(RUNS_OF, rel.project, "bulk")
        return rows if len(rows) >= EVENTS else None

    rows = poll("a run for each of the 2,000 events", all_runs, timeout=240)
    recorded_s = time.monotonic() - t0
    # Exactly one run per event: no event without a run, none with two, nothing else.
    assert len(rows) == EVENTS
    assert sorted(r[2] for r in rows) == sorted(ids)
    # The service is paused: the runs wait, queued, and no Job was started for them.
    assert {r[1] for r in rows} == {"queued"}, {r[1] for r in rows}
    after = {name: _metric(ip, "k8x_hub_events_total") for name, ip in hubs.items()}
    consumed = {name: after[name] - before[name] for name in hubs}
    assert all(n > 0 for n in consumed.values()), consumed
    assert sum(consumed.values()) >= EVENTS, consumed
    print(
        f"\n{EVENTS} events: accepted by the web Service in {sent_s:.1f}s ({EVENTS / sent_s:.0f}/s), "
        f"all runs recorded after {recorded_s:.1f}s ({EVENTS / recorded_s:.0f} events/s end to end); "
        f"per hub {consumed}"
    )


def test_only_the_watcher_lease_holder_acts_and_a_standby_takes_over(release: Release) -> None:
    rel = release
    t_start = time.monotonic()

    def settled() -> tuple[str, dict[str, str]] | None:
        watchers = _pods(rel, "watcher")
        holder = _holder(rel)
        return (holder, watchers) if len(watchers) == 2 and holder in watchers else None

    # A Lease left by an earlier install expires first (one lease duration).
    holder, watchers = poll("a watcher pod holding the Lease k8x-watcher", settled, timeout=90)
    (standby,) = (name for name in watchers if name != holder)
    assert _metric(watchers[holder], "k8x_leader", 'role="watcher"') == 1.0
    assert _metric(watchers[standby], "k8x_leader", 'role="watcher"') == 0.0

    # A run in progress when the leader dies still reaches its end.
    ce_id = _send_tick(rel)
    _run_of(rel, ce_id, ("running",), timeout=120)
    res = rel.kubectl("-n", NS, "delete", "pod", holder, "--grace-period=0", "--force", "--wait=false")
    assert res.returncode == 0, res.stderr
    killed = time.monotonic()

    def taken() -> str | None:
        now = _holder(rel)
        return now if now and now != holder else None

    new_holder = poll("another watcher to take the Lease", taken, timeout=LEASE_SECONDS * 3)
    takeover_s = time.monotonic() - killed
    # The kubelet still sends SIGTERM (2 s minimum grace) to a force-deleted pod, so the leader
    # usually releases the Lease and the next candidate to look takes it: the standby, or the
    # pod the Deployment started in its place. Without a release (a crash), a standby waits one
    # lease duration after it last saw the record change, read every retry period (2 s at 15 s,
    # +20% jitter): at most ~20 s after the kill.
    assert takeover_s <= LEASE_SECONDS + 8, takeover_s
    live = poll("the new leader's pod", lambda: (p := _pods(rel, "watcher")) and new_holder in p and p, 60)
    assert new_holder != holder and new_holder in live, (new_holder, live)
    poll(
        "the new leader's k8x_leader metric",
        lambda: _metric(live[new_holder], "k8x_leader", 'role="watcher"') == 1.0,
        30,
    )
    for name, ip in live.items():
        if name != new_holder:
            assert _metric(ip, "k8x_leader", 'role="watcher"') == 0.0, name

    run_id = _run_of(rel, ce_id, TERMINAL, timeout=120)
    (status,) = {r[1] for r in _db(RUNS_OF, rel.project, "tick") if r[0] == run_id}
    assert status == "succeeded", status
    log = requests.get(f"{rel.base}/api/runs/{run_id}/log", headers=rel.headers, timeout=10).text
    assert "scale-tick-12" in log, log
    # A run started after the takeover goes through the new leader as well.
    after_id = _run_of(rel, _send_tick(rel), TERMINAL, timeout=120)
    (status,) = {r[1] for r in _db(RUNS_OF, rel.project, "tick") if r[0] == after_id}
    assert status == "succeeded", status
    print(
        f"\nwatcher failover: {holder} force-deleted, {new_holder} took the Lease after {takeover_s:.1f}s "
        f"({'the standby' if new_holder == standby else 'a new pod of the Deployment'}); "
        f"test {time.monotonic() - t_start:.0f}s"
    )


def _host_pid(rel: Release, pod: str) -> int:
    """The host pid of a pod's container: the local cluster's containerd runs on this machine
    (crictl of its build, the cluster's crictl.yaml next to its kubeconfig)."""
    script = (
        'eval "$(deploy/local/env.sh)"; export CRI_CONFIG_FILE="$C"; '
        'id=$(crictl ps --label "io.kubernetes.pod.name=$P" --label io.kubernetes.pod.namespace=k8x-system -q); '
        "crictl inspect -o go-template --template '{{.info.pid}}' $id"
    )
    out = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(Path.home()),
            "C": str(Path(rel.admin_kubeconfig).parent / "crictl.yaml"),
            "P": pod,
        },
    )
    assert out.returncode == 0 and out.stdout.strip().isdigit(), out.stdout + out.stderr
    return int(out.stdout.strip())


def test_a_hung_watcher_leader_loses_the_lease_after_the_lease_duration(release: Release) -> None:
    """A leader that never releases the Lease (frozen with SIGSTOP, then force-deleted: the
    kubelet's SIGTERM waits behind the stop and SIGKILL ends it): a standby takes over only
    after one lease duration without renewals."""
    rel = release
    t_start = time.monotonic()

    def settled() -> tuple[str, dict[str, str]] | None:
        watchers = _pods(rel, "watcher")
        holder = _holder(rel)
        if len(watchers) != 2 or holder not in watchers:
            return None
        # Both electors run: the holder reports leading, the other standby.
        leading = {name: _metric(ip, "k8x_leader", 'role="watcher"') for name, ip in watchers.items()}
        return (holder, watchers) if sorted(leading.values()) == [0.0, 1.0] and leading[holder] == 1.0 else None

    holder, watchers = poll("two watchers, one holding the Lease", settled, timeout=120)
    (standby,) = (name for name in watchers if name != holder)
    ce_id = _send_tick(rel)
    _run_of(rel, ce_id, ("running",), timeout=120)
    pid = _host_pid(rel, holder)
    os.kill(pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        res = rel.kubectl("-n", NS, "delete", "pod", holder, "--grace-period=0", "--force", "--wait=false")
        assert res.returncode == 0, res.stderr

        def taken() -> str | None:
            now = _holder(rel)
            return now if now and now != holder else None

        new_holder = poll("a standby to take the Lease of the hung leader", taken, timeout=LEASE_SECONDS * 3)
        takeover_s = time.monotonic() - frozen
    finally:
        # Harmless once the kubelet's SIGKILL ended it; lets it go if the delete failed.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    # Its last renewal came at most one retry period (2 s) before the freeze; the standby saw it
    # unchanged for a full lease duration by its own clock, read every 2-2.4 s.
    assert LEASE_SECONDS - 3 <= takeover_s <= LEASE_SECONDS + 8, takeover_s
    assert new_holder in (standby, *_pods(rel, "watcher")), new_holder
    run_id = _run_of(rel, ce_id, TERMINAL, timeout=120)
    (status,) = {r[1] for r in _db(RUNS_OF, rel.project, "tick") if r[0] == run_id}
    assert status == "succeeded", status
    print(
        f"\nhung watcher leader: {holder} frozen and force-deleted, {new_holder} took the Lease after "
        f"{takeover_s:.1f}s ({'the standby' if new_holder == standby else 'a new pod of the Deployment'}); "
        f"test {time.monotonic() - t_start:.0f}s"
    )
