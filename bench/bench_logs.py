"""Run logs: what storing followed lines costs, and what following a log costs the
watcher, each beside the physical limit measured in the same run.

1. Append cost (PostgreSQL only). LINES lines of LINE_BYTES bytes are appended to
   one run's log in flushes of FLUSH lines, as the watcher does every 0.25 s:
   - K8X: ``run_log_append`` (lock the run row, INSERT one RunLog chunk);
   - old: the former ``UPDATE … SET log = log || %s`` (``Concat(F("log"), …)``),
     which rewrites the whole stored text on every flush, on a scratch table
     shaped like the old column;
   - physical limit: a bare INSERT loop of the same chunks, and one COPY of them.
   Printed: milliseconds per 1,000 lines appended between 0 and 1k, 1k and 5k,
   5k and 10k lines already stored. Flat rows are O(lines) in total.

2. Watcher CPU per MB followed (real cluster). A busybox container writes one
   line of SIZE MB (the hostile case) for each SIZE in SIZES, then sleeps;
   ``manage.py k8x_watch --namespace <ns>`` (a subprocess, K8X_LOG_CAP_BYTES
   raised above SIZE so it follows everything) stores it. Its utime+stime (from
   /proc/<pid>/stat) until the stored log holds the whole line, per MB, beside
   this process's CPU time for reading the same pod's log straight from the API
   in a bare streaming loop (no splitting, no storing).

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench python bench/bench_logs.py \\
        [LINES] [FLUSH] [LINE_BYTES] [SIZES]       # 10000 10 200 10,50,100
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import REPO, django_ready

CHECKPOINTS = (1_000, 5_000, 10_000)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def per_1k(marks: dict[int, float]) -> list[float]:
    """ms per 1,000 lines in each segment between checkpoints."""
    out, prev_n, prev_t = [], 0, 0.0
    for n in CHECKPOINTS:
        out.append((marks[n] - prev_t) * 1000 / ((n - prev_n) / 1000))
        prev_n, prev_t = n, marks[n]
    return out


def timed_appends(flushes: list[str], flush: int, append: Callable[[str], object]) -> dict[int, float]:
    marks: dict[int, float] = {}
    start = time.perf_counter()
    for i, text in enumerate(flushes, start=1):
        append(text)
        lines = i * flush
        if lines in CHECKPOINTS:
            marks[lines] = time.perf_counter() - start
    return marks


def bench_append(lines: int, flush: int, line_bytes: int) -> None:
    from django.db import connection

    from k8x_core.models import Project, Run, RunLog, RunStatus, Service, TriggerKind
    from k8x_core.runs.logs import run_log_append, run_log_size

    assert lines >= CHECKPOINTS[-1] and all(n % flush == 0 for n in CHECKPOINTS), "FLUSH must divide 1000"
    tag = uuid.uuid4().hex[:8]
    project = Project.objects.create(slug=f"bench-logs-{tag}", namespace=f"k8x-bench-logs-{tag}")
    service = Service.objects.create(project=project, name="appender", image="localhost:5000/k8x/busybox:1")
    filler = "x" * max(0, line_bytes - 32)
    flushes = [
        "".join(f"2026-11-27T16:00:{(i * flush + j) % 60:02d}.000000000Z {filler}\n" for j in range(flush))
        for i in range(CHECKPOINTS[-1] // flush)
    ]
    table = RunLog._meta.db_table
    try:
        results: dict[str, list[float]] = {}

        warm = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.RUNNING)
        for text in flushes[:50]:
            run_log_append(run_id=warm.pk, text=text)
        run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.RUNNING)
        marks = timed_appends(flushes, flush, lambda text: run_log_append(run_id=run.pk, text=text))
        assert run_log_size(run.pk) == sum(len(t.encode()) for t in flushes)
        results["K8X run_log_append (INSERT … SELECT, row lock)"] = per_1k(marks)

        with connection.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE bench_logs_old (id uuid PRIMARY KEY, status varchar(10), "
                "log text NOT NULL DEFAULT '', log_truncated boolean NOT NULL DEFAULT false)"
            )
            old_id = uuid.uuid4()
            cur.execute("INSERT INTO bench_logs_old (id, status) VALUES (%s, 'running')", [old_id])

            def concat(text: str) -> None:
                # The SQL of Run.objects.filter(pk=…, status__in=NOT_OVER).update(log=Concat(F("log"), Value(text))).
                cur.execute(
                    "UPDATE bench_logs_old SET log = COALESCE(log, '') || COALESCE(%s, '') "
                    "WHERE id = %s AND status IN ('queued', 'starting', 'running')",
                    [text, old_id],
                )

            results["old Concat rewrite (UPDATE log = log || …)"] = per_1k(timed_appends(flushes, flush, concat))

            bare = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.RUNNING)

            def insert(text: str) -> None:
                cur.execute(
                    f'INSERT INTO "{table}" (run_id, text, bytes) VALUES (%s, %s, %s)',  # noqa: S608 (our table)
                    [bare.pk, text, len(text.encode())],
                )

            results["physical: bare INSERT loop"] = per_1k(timed_appends(flushes, flush, insert))

            copied = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.RUNNING)
            start = time.perf_counter()
            with cur.cursor.copy(f'COPY "{table}" (run_id, text, bytes) FROM STDIN') as copy:
                for text in flushes:
                    copy.write_row((copied.pk, text, len(text.encode())))
            elapsed = time.perf_counter() - start
            results["physical: one COPY of the same chunks"] = [elapsed * 1000 / (CHECKPOINTS[-1] / 1000)] * 3
            cur.execute("DROP TABLE bench_logs_old")
    finally:
        Run.objects.filter(service__project=project).delete()
        project.delete()

    mb = sum(len(t) for t in flushes) / 1e6
    print(f"\nappend cost: {CHECKPOINTS[-1]:,} lines of {line_bytes} B ({mb:.1f} MB) in flushes of {flush} lines")
    print(f"{'ms per 1,000 lines appended, with N lines stored':<48}{'0-1k':>9}{'1k-5k':>9}{'5k-10k':>9}{'growth':>8}")
    for name, row in results.items():
        print(f"{name:<48}{row[0]:>9.1f}{row[1]:>9.1f}{row[2]:>9.1f}{row[2] / max(row[0], 1e-9):>7.1f}x")


def bench_follow(sizes: list[int]) -> None:
    from django.conf import settings

    from k8x_core import kube
    from k8x_core.models import Project, Run, RunStatus, Service, TriggerKind
    from k8x_core.runs import launch
    from k8x_core.runs.logs import run_log_size

    tag = uuid.uuid4().hex[:8]
    namespace = f"k8x-bench-logs-{tag}"
    project = Project.objects.create(slug=f"bench-logs-{tag}", namespace=namespace)
    kube.namespace_ensure(name=namespace)
    cap = (max(sizes) + 10) * 1_000_000
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "K8X_LOG_CAP_BYTES": str(cap),
        "PYTHONUNBUFFERED": "1",
    }
    log = open(os.environ.get("BENCH_LOGS_LOG", os.devnull), "a")  # noqa: SIM115
    watcher = subprocess.Popen(
        [sys.executable, "manage.py", "k8x_watch", "--namespace", namespace],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    rows: list[tuple[int, float, float, float, float]] = []
    try:
        time.sleep(5)  # the watcher's start-up (imports, first list) is not counted
        for size in sizes:
            nbytes = size * 1_000_000
            script = f"echo begin; head -c {nbytes} /dev/zero | tr '\\000' a; echo; echo end; sleep 600"
            service = Service.objects.create(
                project=project,
                name=f"line{size}",
                image="localhost:5000/k8x/busybox:1",
                command=["sh", "-c", script],
                timeout_seconds=900,
            )
            run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.QUEUED)
            cpu0 = cpu_seconds(watcher.pid)
            wall0 = time.monotonic()
            launch.run_launch(run_id=run.pk)
            bare: dict[str, float] = {}
            direct = threading.Thread(target=follow_bare, args=(namespace, run.pk, bare), daemon=True)
            direct.start()
            deadline = time.monotonic() + 900
            while run_log_size(run.pk) < nbytes or not run_log_text_has_end(run.pk):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{size} MB: only {run_log_size(run.pk):,} bytes stored after 900 s")
                time.sleep(0.2)
            cpu = cpu_seconds(watcher.pid) - cpu0
            wall = time.monotonic() - wall0
            direct.join(timeout=300)
            read, bare_cpu = bare.get("bytes", 0.0), bare.get("cpu", float("nan"))
            assert read >= nbytes, (read, nbytes)
            rows.append((size, cpu, wall, bare_cpu, read / 1e6))
            launch.run_cancel(run_id=run.pk, user=None)
            Run.objects.filter(pk=run.pk).delete()
    finally:
        watcher.terminate()
        try:
            watcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watcher.kill()
        kube.namespace_delete(name=namespace)
        Run.objects.filter(service__project=project).delete()
        project.delete()

    print("\nwatcher following one long line (k8x_watch subprocess, utime+stime from /proc)")
    print(
        f"{'line size':<12}{'watcher CPU s':>15}{'s per MB':>10}{'wall s':>9}{'bare follow CPU s':>17}{'s per MB':>10}"
    )
    for size, cpu, wall, bare_cpu, read_mb in rows:
        ours = f"{size:>4} MB{'':<6}{cpu:>15.2f}{cpu / size:>10.3f}{wall:>9.1f}"
        print(f"{ours}{bare_cpu:>17.2f}{bare_cpu / read_mb:>10.3f}")


def follow_bare(namespace: str, run_id: Any, out: dict[str, float]) -> None:
    """The physical limit: follow the same pod's log straight from the API in a bare
    loop (count the bytes, look for the last line), timing this thread's CPU."""
    from k8x_core import kube
    from k8x_core.runs import jobspec

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods, _ = kube.pod_list(namespace=namespace, label_selector=f"{jobspec.LABEL_RUN_ID}={run_id}")
        if any((p.get("status") or {}).get("phase") == "Running" for p in pods):
            break
        time.sleep(0.05)
    start = time.thread_time()
    read = 0
    # Followed (not read afterwards): the kubelet rotates container logs over 10 MiB,
    # and only a follow sees every byte.
    for chunk in kube.pod_log_chunks(namespace=namespace, name=pods[0]["metadata"]["name"]):
        read += len(chunk)
        if b" end\n" in chunk[-64:]:
            break
    out["cpu"] = time.thread_time() - start
    out["bytes"] = read


def run_log_text_has_end(run_id: Any) -> bool:
    """The line after the long one is stored (the follower got to the end)."""
    from k8x_core.models import RunLog

    last = RunLog.objects.filter(run_id=run_id).order_by("-id").values_list("text", flat=True).first() or ""
    return " end\n" in last[-200:]


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    flush = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    line_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    sizes = [int(s) for s in (sys.argv[4] if len(sys.argv) > 4 else "10,50,100").split(",")]
    django_ready()

    bench_append(lines, flush, line_bytes)
    if sizes != [0]:
        bench_follow(sizes)


if __name__ == "__main__":
    main()
