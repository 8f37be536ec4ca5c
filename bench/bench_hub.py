"""Hub throughput vs a bare confluent-kafka consumer, on the same events, on
this machine (real Kafka, PostgreSQL, Redis), for three matching mixes:

- ``1%``: a shared bus; 1 event in 100 is ``com.acme.order.created``
  (service ``orders``, exact type), the rest 20 other types nobody triggers on;
- ``10%``: every event is ``com.acme.payment.captured``; service ``big-payments``
  has a glob trigger with a CEL filter true for 10% of them (CEL runs on all);
- ``100%``: every event triggers ``orders``.

Per mix:

1. N CloudEvents (binary mode) go to a fresh 4-partition topic.
2. bare: a plain confluent-kafka consumer (fresh group) reads them all,
   committing after each poll, timed from the first message to the last.
3. hub: ``python manage.py k8x_hub`` as its own process (fresh group), so its
   RSS and CPU are its own (``/proc/<pid>``); its progress is read from its
   ``/metrics`` (``k8x_hub_events_total``) every 20 ms, timed from the first
   counted event to the last.
4. the stage split: decode and match (incl. CEL) timed in this process on a
   5,000-event sample of the mix (pure CPU, no I/O); the remainder of the
   hub's time per event is recording, enqueuing and committing.

Beside the wall-time rates, the CPU seconds per event of the hub process
(``/proc/<pid>/stat``, all its threads) and of the bare consumer (this
process's CPU while it reads): on a shared, loaded machine CPU per event moves
much less than events/s. Every row prints the load average beside it.

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench python bench/bench_hub.py [N] [MIXES]

N defaults to 50,000 per mix; MIXES to ``1,10,100``. ``K8X_HUB_BATCH_SIZE`` in
the environment reaches the hub process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import REPO, django_ready, proc_cpu_seconds, proc_status_mb

NOISE_TYPES = 20


@dataclass
class MixResult:
    mix: int
    n: int
    matched: int
    runs: int
    bare_s: float
    bare_cpu_s: float
    hub_s: float
    hub_cpu_s: float
    hub_rss_mb: float
    hub_idle_rss_mb: float
    batches: int
    batch_mean_ms: float
    decode_us: float
    match_us: float
    load: tuple[float, float]


def clean_up(Event: Any, Project: Any, Run: Any, UnmatchedCount: Any) -> None:
    Run.objects.filter(service__project__slug__startswith="bench-hub-").delete()
    Run.objects.filter(event__source__startswith="/bench-hub/").delete()
    Event.objects.filter(source__startswith="/bench-hub/").delete()
    UnmatchedCount.objects.filter(type__startswith="bench.noise.").delete()
    Project.objects.filter(slug__startswith="bench-hub-").delete()


def _metrics(port: int) -> dict[str, float]:
    """The hub's own counters: events by outcome, batches and their seconds."""
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("k8x_hub_events_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("k8x_hub_batch_seconds_count "):
            out["_batches"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("k8x_hub_batch_seconds_sum "):
            out["_batch_seconds"] = float(line.rsplit(" ", 1)[1])
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event_for(mix: int, i: int, source: str) -> tuple[str, dict[str, Any]]:
    if mix == 100:
        return "com.acme.order.created", {"amount": i % 1000, "customer": f"c{i % 97}", "items": [{"sku": "A1"}]}
    if mix == 10:
        return "com.acme.payment.captured", {"amount": i % 1000, "customer": f"c{i % 97}", "items": [{"sku": "A1"}]}
    if i % 100 == 0:
        return "com.acme.order.created", {"amount": i % 1000, "customer": f"c{i % 97}", "items": [{"sku": "A1"}]}
    return f"bench.noise.t{i % NOISE_TYPES}", {"n": i, "host": f"h{i % 13}", "items": [{"sku": "A1"}]}


def bench_setup() -> tuple[Any, str, str]:
    """(project, queue, tag) of a fresh run: what an interrupted earlier run left is
    removed, a queue of its own, and the services and triggers the mixes match."""
    # Imported here: Django is set up by django_ready(), after this module is imported.
    from django.conf import settings

    from k8x_core.models import Event, Project, Run, Service, Trigger, UnmatchedCount

    clean_up(Event, Project, Run, UnmatchedCount)
    tag = uuid.uuid4().hex[:10]
    queue_name = f"k8x-bench-{tag}"
    settings.K8X_QUEUE = queue_name
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_name: {"URL": settings.REDIS_URL}}
    project = Project.objects.create(slug=f"bench-hub-{tag}")
    orders = Service.objects.create(project=project, name="orders", image="busybox")
    big = Service.objects.create(project=project, name="big-payments", image="busybox")
    Trigger.objects.create(service=orders, event_type="com.acme.order.created")
    Trigger.objects.create(service=big, event_type="com.acme.payment.*", cel_expression="event.data.amount >= 900")
    return project, queue_name, tag


def run_mix(*, mix: int, n: int, project: Any, queue_name: str, tag: str) -> MixResult:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from django.conf import settings

    from k8x_core.events.ce import ce_new, ce_to_kafka
    from k8x_core.hub.loop import Decoded, hub_decode, hub_match
    from k8x_core.hub.matching import trigger_index_load
    from k8x_core.kafka.consumer import HubMessage
    from k8x_core.models import Event, EventOutcome, Run, UnmatchedCount

    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    topic, dlq = f"k8x.bench.hub.{tag}.m{mix}", f"k8x.bench.hub.{tag}.m{mix}.dlq"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics(
        [NewTopic(topic, num_partitions=4, replication_factor=1), NewTopic(dlq, num_partitions=1, replication_factor=1)]
    ).values():
        fut.result(timeout=30)
    source = f"/bench-hub/{tag}/m{mix}"
    groups = [f"k8x-bench-bare-{tag}-m{mix}", f"k8x-bench-hub-{tag}-m{mix}"]
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000})
        sample: list[HubMessage] = []
        for i in range(n):
            type_, data = _event_for(mix, i, source)
            key, headers, value = ce_to_kafka(ce_new(type=type_, source=source, subject=f"s-{i}", data=data))
            if i < 5000:
                sample.append(HubMessage(topic, 0, i, key, list(headers), value))
            while True:
                try:
                    producer.produce(topic, key=key, value=value, headers=headers)  # type: ignore[arg-type]
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(120)
        del producer

        bare = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": groups[0], "auto.offset.reset": "earliest"}
            | {"enable.auto.commit": False}
        )
        bare.subscribe([topic])
        seen = 0
        first: float | None = None
        bare_cpu0 = 0.0
        while seen < n:
            msgs = bare.consume(num_messages=500, timeout=0.5)
            if msgs and first is None:
                first = time.perf_counter()
                # This process's CPU (all threads: librdkafka's too), as the hub's is read from /proc.
                bare_cpu0 = time.process_time()
            for m in msgs:
                if m.error() is None:
                    m.value()
                    m.headers()
                    seen += 1
            if msgs:
                bare.commit(asynchronous=False)
        bare_s = time.perf_counter() - (first or 0)
        bare_cpu_s = time.process_time() - bare_cpu0
        bare.close()

        # The hub as its own process.
        port = _free_port()
        env = dict(os.environ)
        env.update(
            K8X_EVENTS_TOPIC=topic,
            K8X_DLQ_TOPIC=dlq,
            K8X_HUB_GROUP=groups[1],
            K8X_QUEUE=queue_name,
            PYTHONUNBUFFERED="1",
        )
        log = Path(tempfile.gettempdir()) / f"bench-hub-{tag}-m{mix}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "k8x_hub", "--health-port", str(port)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 120
            idle_rss = float("nan")
            counted = 0.0
            first = None
            cpu0 = 0.0
            last_change = time.perf_counter()
            while counted < n:
                assert proc.poll() is None, f"k8x_hub exited {proc.returncode}; see {log}"
                assert time.monotonic() < deadline, f"k8x_hub counted {counted} of {n} events; see {log}"
                progress = _metrics(port)
                now = time.perf_counter()
                total = sum(v for k, v in progress.items() if not k.startswith("_"))
                if total > counted:
                    last_change = now
                    deadline = time.monotonic() + 120
                if progress and idle_rss != idle_rss:  # NaN: not read yet
                    # Serving /metrics, nothing recorded yet: set up, before its first batch.
                    idle_rss = proc_status_mb(proc.pid, "VmRSS")
                if first is None:
                    if total == 0:
                        cpu0 = proc_cpu_seconds(proc.pid)
                    else:
                        first = now
                counted = total
                time.sleep(0.02)
            hub_s = last_change - (first or last_change)
            hub_cpu = proc_cpu_seconds(proc.pid) - cpu0
            hub_rss = proc_status_mb(proc.pid, "VmHWM")
            metrics = _metrics(port)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        load = os.getloadavg()[:2]

        index = trigger_index_load()
        for msg in sample[:500]:  # warm up (caches, first-use imports)
            hub_decode(msg, index=index)
        t0 = time.perf_counter()
        decoded = [hub_decode(msg, index=index) for msg in sample]
        decode_us = (time.perf_counter() - t0) / len(sample) * 1e6
        t0 = time.perf_counter()
        for d in decoded:
            if isinstance(d, Decoded):
                hub_match(d, index=index)
        match_us = (time.perf_counter() - t0) / len(sample) * 1e6

        matched = Event.objects.filter(source=source, outcome=EventOutcome.MATCHED).count()
        runs = Run.objects.filter(event__source=source).count()
        unmatched = sum(
            UnmatchedCount.objects.filter(project=None, type__startswith="bench.noise.").values_list("count", flat=True)
        )
        expect_matched = {100: n, 10: sum(1 for i in range(n) if i % 1000 >= 900), 1: (n + 99) // 100}[mix]
        assert matched == expect_matched == metrics.get("matched", 0), (matched, expect_matched, metrics)
        assert runs == matched, (runs, matched)
        if mix == 1:
            assert unmatched == n - matched, (unmatched, n - matched)
        return MixResult(
            mix=mix,
            n=n,
            matched=matched,
            runs=runs,
            bare_s=bare_s,
            bare_cpu_s=bare_cpu_s,
            hub_s=hub_s,
            hub_cpu_s=hub_cpu,
            hub_rss_mb=hub_rss,
            hub_idle_rss_mb=idle_rss,
            batches=int(metrics.get("_batches", 0)),
            batch_mean_ms=metrics.get("_batch_seconds", 0.0) / max(1.0, metrics.get("_batches", 0.0)) * 1000,
            decode_us=decode_us,
            match_us=match_us,
            load=load,
        )
    finally:
        for fut in admin.delete_topics([topic, dlq]).values():
            fut.result(timeout=30)
        try:
            for fut in admin.delete_consumer_groups(groups, request_timeout=30).values():
                fut.result()
        except Exception as exc:
            print(f"(consumer group clean-up: {exc})")


TARGETS = {1: (20_000, 0.35), 10: (10_000, 0.0), 100: (5_000, 0.0)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    mixes = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1,10,100").split(",")]
    django_ready()
    from django.conf import settings
    from rq import Queue

    from k8x_core.models import Event, Project, Run, UnmatchedCount
    from k8x_core.runs.queue import launch_queue

    project, queue_name, tag = bench_setup()
    results: list[MixResult] = []
    try:
        for mix in mixes:
            results.append(run_mix(mix=mix, n=n, project=project, queue_name=queue_name, tag=tag))
            UnmatchedCount.objects.filter(type__startswith="bench.noise.").delete()
    finally:
        q = Queue(queue_name, connection=launch_queue().connection)
        q.empty()
        q.delete(delete_jobs=True)
        clean_up(Event, Project, Run, UnmatchedCount)

    batch = os.environ.get("K8X_HUB_BATCH_SIZE", str(settings.K8X_HUB_BATCH_SIZE))
    print(f"\nhub benchmark: {n} events per mix, hub = `manage.py k8x_hub` process, batch size {batch}")
    head = (
        f"{'mix':>5}{'runs':>8}{'bare ev/s':>11}{'hub ev/s':>10}{'ratio':>7}{'hub CPU':>9}{'bare CPU':>9}"
        f"{'decode':>8}{'match':>7}{'rest':>7}{'batch':>8}{'CPU':>6}{'RSS MB':>13}{'load 1/5m':>11}  target"
    )
    print(head)
    print(f"{'':>41}{'(CPU us per event)':<18}{'(wall us per event)':<22}{'ms':>2}{'core':>6}{'peak (idle)':>13}")
    for r in results:
        hub_rate = r.n / r.hub_s if r.hub_s else float("nan")
        bare_rate = r.n / r.bare_s
        ratio = hub_rate / bare_rate
        per_event = 1e6 / hub_rate
        rate_t, ratio_t = TARGETS[r.mix]
        met = hub_rate >= rate_t and ratio >= ratio_t
        target = f">= {rate_t:,}/s" + (f", >= {ratio_t}x" if ratio_t else "") + (" MET" if met else " NOT MET")
        print(
            f"{str(r.mix) + '%':>5}{r.runs:>8}{bare_rate:>11,.0f}{hub_rate:>10,.0f}{ratio:>7.2f}"
            f"{r.hub_cpu_s / r.n * 1e6:>9.0f}{r.bare_cpu_s / r.n * 1e6:>9.0f}{r.decode_us:>8.0f}"
            f"{r.match_us:>7.0f}{per_event - r.decode_us - r.match_us:>7.0f}{r.batch_mean_ms:>8.1f}"
            f"{r.hub_cpu_s / r.hub_s if r.hub_s else 0:>6.2f}{f'{r.hub_rss_mb:.0f} ({r.hub_idle_rss_mb:.0f})':>13}"
            f"{f'{r.load[0]:.1f}/{r.load[1]:.1f}':>11}  {target}"
        )
    print(
        "decode, match: this process, 5,000-event sample, no I/O; rest = hub time per event - decode - match"
        " (recording, enqueuing, committing, Kafka polls); batch = mean of k8x_hub_batch_seconds;"
        " hub CPU, bare CPU = CPU seconds (all threads) per event of the hub process and of the bare consumer;"
        " CPU = the hub process's utime+stime / its wall time; RSS: peak (VmHWM) and once serving /metrics"
        " before its first batch."
    )
    rss_ok = all(r.hub_rss_mb <= 150 for r in results)
    print(f"hub RSS target (<= 150 MB under load): {'MET' if rss_ok else 'NOT MET'}; machine: {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
