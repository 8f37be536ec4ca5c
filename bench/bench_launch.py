"""Launch latency and throughput vs a direct API create, on the same local cluster.

What is timed (one clock, this process):

- t0 = the event is handed to the hub's batch step (decode, match, record the
  Event and Run rows, enqueue on commit); then RQ → ``rqworker`` processes →
  ``launch_run`` (token, configs, secret sync, run Secret, Job create) → mark
  ``starting``.
- "Job created" = the Job's ADDED event arrives on a watch held by this process;
  "container started" = the first pod status with a running (or finished)
  container arrives on a pod watch.
- direct: the same Job (built by ``jobspec.job_build`` for a dummy run: same
  env, labels, secretKeyRefs) POSTed straight to the API; t0 = just before the
  POST; measured by the same watches. That is the physical floor: one API
  create and the cluster's own scheduling and container start.

Then a burst of events through one hub batch, launched by the worker pool:
launches/s until the last Job is created, beside direct creates of as many Jobs
from as many threads.

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench \
        python bench/bench_launch.py [SEQUENTIAL] [BURST] [WORKERS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import REPO, django_ready, pct

os.environ.setdefault("K8X_QUEUE", f"k8x-bench-launch-{uuid.uuid4().hex[:8]}")


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


def main() -> None:
    sequential = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    burst = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    django_ready()
    from django.conf import settings

    from k8x_core import kube
    from k8x_core.events.ce import ce_new, ce_to_kafka
    from k8x_core.hub.loop import hub_process_batch
    from k8x_core.hub.matching import trigger_index_load
    from k8x_core.kafka.consumer import HubMessage
    from k8x_core.models import Project, Run, Service, Trigger, TriggerKind
    from k8x_core.runs import jobspec

    slug = f"bench-launch-{uuid.uuid4().hex[:6]}"
    project = Project.objects.create(slug=slug)
    namespace = project.namespace
    service = Service.objects.create(
        project=project, name="bench", image="localhost:5000/k8x/busybox:1", command=["sh", "-c", "echo hi"]
    )
    Trigger.objects.create(service=service, event_type="com.bench.launch")
    kube.namespace_ensure(name=namespace)
    index = trigger_index_load()

    env = {**os.environ, "K8X_QUEUE": settings.K8X_QUEUE}
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", settings.K8X_QUEUE, "--worker-class", "rq.SimpleWorker"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "a"),  # noqa: SIM115
        )
        for _ in range(workers)
    ]
    observer = Observer(namespace)
    try:
        time.sleep(3)  # workers up

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

        # Warm-up: connections, secret sync, image on the node.
        _, rids = send(1)
        observer.wait(observer.started, rids[0])

        k8x_created, k8x_started = [], []
        for _ in range(sequential):
            t0, (rid,) = send(1)
            k8x_created.append(observer.wait(observer.job_seen, rid) - t0)
            k8x_started.append(observer.wait(observer.started, rid) - t0)

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

        direct_created, direct_started = [], []
        for _ in range(sequential):
            rid, job = direct_job()
            t0 = time.perf_counter()
            kube.job_create(namespace=namespace, job=job)
            direct_created.append(observer.wait(observer.job_seen, rid) - t0)
            direct_started.append(observer.wait(observer.started, rid) - t0)

        # Throughput: one burst through the hub, launched by the worker pool.
        t0, rids = send(burst)
        for rid in rids:
            observer.wait(observer.job_seen, rid, timeout=300)
        k8x_rate = burst / (max(observer.job_seen[r] for r in rids) - t0)

        jobs = [direct_job() for _ in range(burst)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda rj: kube.job_create(namespace=namespace, job=rj[1]), jobs))
        for rid, _ in jobs:
            observer.wait(observer.job_seen, rid, timeout=300)
        direct_rate = burst / (max(observer.job_seen[r] for r, _ in jobs) - t0)

        ms = 1000.0
        print(f"\nlaunch benchmark: {sequential} sequential events, burst of {burst}, {workers} rqworker processes")
        print(f"{'measure':<38}{'K8X':>12}{'direct API':>14}{'ratio':>9}{'target':>12}")
        rows = [
            ("event -> Job created p50 (ms)", pct(k8x_created, 50) * ms, pct(direct_created, 50) * ms, "<= 50"),
            ("event -> Job created p99 (ms)", pct(k8x_created, 99) * ms, pct(direct_created, 99) * ms, "<= 250"),
            ("event -> container started p50 (s)", pct(k8x_started, 50), pct(direct_started, 50), "<= 2"),
            ("event -> container started p99 (s)", pct(k8x_started, 99), pct(direct_started, 99), ""),
            ("launches per second (burst)", k8x_rate, direct_rate, ">= 50"),
        ]
        for name, ours, floor, target in rows:
            print(f"{name:<38}{ours:>12.2f}{floor:>14.2f}{ours / floor:>9.2f}{target:>12}")
        print(
            f"(mean Job created: K8X {statistics.mean(k8x_created) * ms:.1f} ms, direct "
            f"{statistics.mean(direct_created) * ms:.1f} ms)"
        )
        peaks = [peak_rss_mb(p.pid) for p in procs]
        verdict = "MET" if max(peaks) <= 150 else "NOT MET"
        print(f"worker peak RSS: {', '.join(f'{m:.0f} MB' for m in peaks)} (target <= 150 MB each: {verdict})")
    finally:
        observer.stop.set()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
        kube.namespace_delete(name=namespace)
        Run.objects.filter(service__project=project).delete()
        project.delete()


if __name__ == "__main__":
    main()
