"""Launch latency and throughput vs direct API creates, on the same local cluster.

K8X runs as `make up` runs it: the Procfile's two workers (``rqworker`` with
``worker.health.HealthWorker``, one ``--with-scheduler``) and a ``k8x_watch``
process (``--namespace`` of this benchmark's project: a Lease of its own), each
its own process for the whole benchmark; their peak RSS (VmHWM) and CPU
(utime+stime) come from ``/proc/<pid>``. The hub's batch step runs in this
process (decode, match, record the Event and Run rows, enqueue on commit).

What is timed (one clock, this process):

- t0 = the event is handed to the hub's batch step; "Job created" = the Job's
  ADDED event on a watch held by this process; "container started" = the first
  pod status with a running (or finished) container on a pod watch.
- direct: the same Job (``jobspec.job_build`` for a dummy run: same env,
  labels, secretKeyRefs) POSTed straight to the API; t0 = just before the POST;
  measured by the same watches. That is the physical floor: one API create.

Phases, in this order:

1. container started at 2 events/s (a 2-core node cannot start 20 pods/s),
   events and direct creates at the same pace at the same time; each pod
   writes LOG_KB of log, which the watcher follows: its CPU per MB followed.
2. event -> Job created at a steady 20 events/s for STEADY_SECONDS, beside
   direct creates at the same pace at the same time.
3. a burst of BURST events in one hub batch: launches/s until the last Job is
   created, beside as many direct creates from as many threads as the workers
   launch on (workers x K8X_LAUNCH_THREADS).

From phase 2 on the project's quota allows one pod (``pods: "1"``): Jobs are
created as usual, but the node is not asked to start hundreds of pods; before
phase 2 the node settles for BENCH_SETTLE_SECONDS (20) after phase 1's pods.

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench \\
        python bench/bench_launch.py [BURST] [STEADY_SECONDS] [CONTAINER_SECONDS] [LOG_KB]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import REPO, django_ready, namespace_cleanup, pct, proc_cpu_seconds, proc_status_mb

os.environ.setdefault("K8X_QUEUE", f"k8x-bench-launch-{uuid.uuid4().hex[:8]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Observer:
    """Watches Jobs and pods of one namespace; records when each run-id label is first seen."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.job_seen: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.stop = threading.Event()
        self.ready = {"jobs": threading.Event(), "pods": threading.Event()}
        for kind in ("jobs", "pods"):
            threading.Thread(target=self._loop, args=(kind,), daemon=True).start()
        for e in self.ready.values():
            e.wait(30)

    def _loop(self, kind: str) -> None:
        from k8x_core import kube

        path = kube.jobs_path(self.namespace) if kind == "jobs" else kube.pods_path(self.namespace)
        selector = "app.kubernetes.io/managed-by=k8x"
        while not self.stop.is_set():
            _items, rv = (kube.job_list if kind == "jobs" else kube.pod_list)(
                namespace=self.namespace, label_selector=selector
            )
            self.ready[kind].set()
            try:
                for ev in kube.watch(path=path, label_selector=selector, resource_version=rv, timeout_seconds=600):
                    now = time.perf_counter()
                    obj = ev.get("object") or {}
                    rid = ((obj.get("metadata") or {}).get("labels") or {}).get("k8x.io/run-id")
                    if not rid:
                        continue
                    if kind == "jobs":
                        self.job_seen.setdefault(rid, now)
                    else:
                        for cs in (obj.get("status") or {}).get("containerStatuses") or []:
                            state = cs.get("state") or {}
                            if state.get("running") or state.get("terminated"):
                                self.started.setdefault(rid, now)
                    if self.stop.is_set():
                        return
            except kube.KubeGone:
                continue

    def wait(self, table: dict[str, float], rid: str, timeout: float = 120) -> float:
        deadline = time.perf_counter() + timeout
        while rid not in table:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"run {rid} not seen in time")
            time.sleep(0.001)
        return table[rid]


def paced(rate: float, seconds: float, fn: Callable[[], tuple[float, str]]) -> list[tuple[float, str]]:
    """``fn`` at a steady ``rate`` per second for ``seconds`` (on schedule, not after the previous call)."""
    out = []
    start = time.perf_counter()
    for i in range(round(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        out.append(fn())
    return out


def side_by_side(a: Callable[[], Any], b: Callable[[], Any]) -> tuple[Any, Any]:
    """Run ``a`` and ``b`` at the same time (``b`` on a thread of its own)."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("b", b()))
    thread.start()
    result["a"] = a()
    thread.join()
    return result["a"], result["b"]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    burst = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    steady_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10
    container_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    log_kb = int(sys.argv[4]) if len(sys.argv) > 4 else 256
    settle = float(os.environ.get("BENCH_SETTLE_SECONDS", "20"))
    django_ready()
    from django.conf import settings
    from django.db import connection
    from django.db.models import Sum

    from k8x_core import kube
    from k8x_core.events.ce import ce_new, ce_to_kafka
    from k8x_core.hub.loop import hub_process_batch
    from k8x_core.hub.matching import trigger_index_load
    from k8x_core.kafka.consumer import HubMessage
    from k8x_core.models import Project, Run, RunLog, Service, Trigger, TriggerKind
    from k8x_core.runs import jobspec
    from k8x_core.runs.namespaces import project_namespace_ensure

    slug = f"bench-launch-{uuid.uuid4().hex[:6]}"
    project = Project.objects.create(slug=slug)
    namespace = project.namespace
    line = "0123456789" * 9
    service = Service.objects.create(
        project=project,
        name="bench",
        image="localhost:5000/k8x/busybox:1",
        command=["sh", "-c", f"yes {line} | head -c {log_kb * 1024}; echo"],
    )
    Trigger.objects.create(service=service, event_type="com.bench.launch")
    project_namespace_ensure(project=project)
    index = trigger_index_load()
    print(f"load before: {uptime()}")

    env = {**os.environ, "K8X_QUEUE": settings.K8X_QUEUE}
    log_file = open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "a")  # noqa: SIM115
    worker = [sys.executable, "manage.py", "rqworker", "--worker-class", "worker.health.HealthWorker"]
    commands = {
        "worker": [*worker, "--with-scheduler", settings.K8X_QUEUE],
        "worker2": [*worker, settings.K8X_QUEUE],
        "watcher": [
            sys.executable,
            "manage.py",
            "k8x_watch",
            "--namespace",
            namespace,
            "--health-port",
            str(free_port()),
        ],
    }
    procs = {
        name: subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**env, "K8X_HEALTH_PORT": str(free_port())},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        for name, cmd in commands.items()
    }
    workers = [procs["worker"], procs["worker2"]]
    # (getattr: the same benchmark measures commits from before K8X_LAUNCH_THREADS, one thread per worker.)
    launch_threads = int(getattr(settings, "K8X_LAUNCH_THREADS", 1))
    threads = len(workers) * launch_threads
    observer = Observer(namespace)
    try:
        time.sleep(4)  # workers and watcher up

        def send(n: int) -> tuple[float, list[str]]:
            messages = []
            for _ in range(n):
                key, headers, value = ce_to_kafka(ce_new(type="com.bench.launch", source="/bench", data={"x": 1}))
                messages.append(
                    HubMessage(topic="t", partition=0, offset=0, key=key, headers=list(headers), value=value)
                )
            t0 = time.perf_counter()
            result = hub_process_batch(messages=messages, index=index)
            return t0, [str(r) for r in result.run_ids]

        def send_one() -> tuple[float, str]:
            t0, (rid,) = send(1)
            return t0, rid

        def direct_job() -> tuple[str, dict[str, Any]]:
            run = Run(id=uuid.uuid4(), service=service, trigger_kind=TriggerKind.MANUAL, correlation_id="bench")
            build = jobspec.job_build(
                run=run,
                service=service,
                project_slug=slug,
                namespace=namespace,
                event=None,
                configs={},
                secret_keys=[],
                events_url=settings.K8X_EVENTS_URL,
                run_token="x",  # noqa: S106  (a dummy, not a credential)
                ttl_seconds_after_finished=60,
            )
            # Same Job, minus the run Secret the token would live in.
            for c in build.job["spec"]["template"]["spec"]["containers"]:
                c["env"] = [e for e in c["env"] if e["name"] != "K8X_RUN_TOKEN"]
            return str(run.id), build.job

        def direct_one() -> tuple[float, str]:
            rid, job = direct_job()
            t0 = time.perf_counter()
            kube.job_create(namespace=namespace, job=job)
            return t0, rid

        def events_paced(rate: float, seconds: float) -> list[tuple[float, str]]:
            try:
                return paced(rate, seconds, send_one)
            finally:
                connection.close()  # this thread's own

        # Warm-up: connections, secret sync, admission, the image on the node (each worker).
        for _ in range(4):
            _, rids = send(1)
            observer.wait(observer.started, rids[0])
        cpu0 = {name: proc_cpu_seconds(p.pid) for name, p in procs.items()}
        launched0 = Run.objects.filter(service=service).count()

        # 1. Container started at 2/s, K8X and direct side by side; the watcher follows the logs.
        watcher_cpu0 = proc_cpu_seconds(procs["watcher"].pid)
        log0 = RunLog.objects.filter(run__service=service).aggregate(b=Sum("bytes"))["b"] or 0
        k8x_sent, direct_sent = side_by_side(
            lambda: paced(2, container_seconds, send_one), lambda: paced(2, container_seconds, direct_one)
        )
        k8x_started = [observer.wait(observer.started, rid) - t0 for t0, rid in k8x_sent]
        direct_started = [observer.wait(observer.started, rid) - t0 for t0, rid in direct_sent]
        k8x_runs = [rid for _, rid in k8x_sent]
        deadline = time.monotonic() + 120
        while Run.objects.filter(pk__in=k8x_runs, finished_at__isnull=True).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        log_mb = ((RunLog.objects.filter(run__service=service).aggregate(b=Sum("bytes"))["b"] or 0) - log0) / 1e6
        watcher_cpu = proc_cpu_seconds(procs["watcher"].pid) - watcher_cpu0
        load_container = uptime()

        # From here on one pod at a time: Jobs are created, the node is spared. The
        # node settles first: phase 1's pods are still being torn down.
        project.quota = {"pods": "1"}
        project.save(update_fields=["quota"])
        project_namespace_ensure(project=project, force=True)
        time.sleep(settle)

        # 2. Steady 20/s: event -> Job created, beside direct creates at the same pace.
        k8x_sent, direct_sent = side_by_side(
            lambda: events_paced(20, steady_seconds), lambda: paced(20, steady_seconds, direct_one)
        )
        k8x_created = [observer.wait(observer.job_seen, rid) - t0 for t0, rid in k8x_sent]
        direct_created = [observer.wait(observer.job_seen, rid) - t0 for t0, rid in direct_sent]
        load_steady = uptime()

        # 3. Burst: one hub batch, launched by the workers; then as many direct creates from as many threads.
        t0, rids = send(burst)
        for rid in rids:
            observer.wait(observer.job_seen, rid, timeout=300)
        k8x_rate = burst / (max(observer.job_seen[r] for r in rids) - t0)
        load_burst = uptime()
        jobs = [direct_job() for _ in range(burst)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda rj: kube.job_create(namespace=namespace, job=rj[1]), jobs))
        for rid, _ in jobs:
            observer.wait(observer.job_seen, rid, timeout=300)
        direct_rate = burst / (max(observer.job_seen[r] for r, _ in jobs) - t0)

        launched = Run.objects.filter(service=service).count() - launched0
        cpu = {name: proc_cpu_seconds(p.pid) - cpu0[name] for name, p in procs.items()}
        peaks = {name: proc_status_mb(p.pid, "VmHWM") for name, p in procs.items()}

        ms = 1000.0
        print(
            f"\nlaunch benchmark: burst of {burst}, {steady_seconds:.0f} s at 20 events/s, "
            f"{container_seconds:.0f} s at 2 events/s; 2 workers x {launch_threads} launch threads; "
            f"direct burst from {threads} threads"
        )
        print(f"{'measure':<44}{'K8X':>10}{'direct API':>12}{'ratio':>8}  target")
        rows = [
            ("event -> Job created p50 at 20/s (ms)", pct(k8x_created, 50) * ms, pct(direct_created, 50) * ms, "<= 30"),
            (
                "event -> Job created p99 at 20/s (ms)",
                pct(k8x_created, 99) * ms,
                pct(direct_created, 99) * ms,
                "<= 150",
            ),
            ("event -> container started p50 at 2/s (s)", pct(k8x_started, 50), pct(direct_started, 50), "<= 2"),
            ("event -> container started p99 at 2/s (s)", pct(k8x_started, 99), pct(direct_started, 99), ""),
            (f"launches per second (burst of {burst})", k8x_rate, direct_rate, ">= 50, >= 0.7x"),
        ]
        for name, ours, floor, target in rows:
            print(f"{name:<44}{ours:>10.2f}{floor:>12.2f}{ours / floor:>8.2f}  {target}")
        for name in ("worker", "worker2", "watcher"):
            verdict = "met" if peaks[name] <= 150 else "NOT met"
            print(f"{name:<8} peak RSS {peaks[name]:.0f} MB (<= 150 MB: {verdict}), CPU {cpu[name]:.2f} s")
        worker_cpu = cpu["worker"] + cpu["worker2"]
        print(f"worker CPU per launch: {worker_cpu / max(launched, 1) * ms:.2f} ms ({launched} launches after warm-up)")
        print(
            f"watcher CPU per MB followed (phase 1, status work included): "
            f"{watcher_cpu / log_mb * ms if log_mb else float('nan'):.1f} ms ({watcher_cpu:.2f} s for {log_mb:.1f} MB)"
        )
        print(
            f"load after phase 1: {load_container}\nload after phase 2: {load_steady}\nload after phase 3: {load_burst}"
        )
    finally:
        observer.stop.set()
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        namespace_cleanup(namespace)
        Run.objects.filter(service__project=project).delete()
        project.delete()


if __name__ == "__main__":
    main()
