"""Hub throughput vs a bare confluent-kafka consumer, on the same events, on
this machine (real Kafka, PostgreSQL, Redis).

1. N CloudEvents (binary mode) go to a fresh 4-partition topic.
2. bare: a plain confluent-kafka consumer (fresh group) reads them all.
3. hub: the hub's loop (fresh group) reads, decodes, matches, records
   (Event rows + Run rows in one transaction per batch), enqueues the launches
   in Redis and commits offsets.
Both are timed from the first message received to the last one handled.

Matching mix: every event triggers service ``orders`` (exact type); service
``big-orders`` has a glob trigger with a CEL filter true for 10% of events;
so 1.1 runs per event.

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench python bench/bench_hub.py [N]
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from _common import django_ready


def clean_up(Event: Any, Project: Any, Run: Any) -> None:
    Run.objects.filter(service__project__slug__startswith="bench-hub-").delete()
    Run.objects.filter(event__source__startswith="/bench-hub/").delete()
    Event.objects.filter(source__startswith="/bench-hub/").delete()
    Project.objects.filter(slug__startswith="bench-hub-").delete()


def _peak_rss_reset() -> bool:
    """Reset this process's peak RSS (VmHWM), so the hub phase is measured on
    its own rather than with the producer's buffers (Linux 4.0+)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    django_ready()
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from django.conf import settings
    from rq import Queue

    from k8x_core.events.ce import ce_new, ce_to_kafka
    from k8x_core.hub.loop import Decoded, Hub, hub_decode, hub_match
    from k8x_core.hub.matching import trigger_index_load
    from k8x_core.kafka.consumer import DeadLetterProducer, HubConsumer, HubMessage
    from k8x_core.models import Event, Project, Run, Service, Trigger
    from k8x_core.runs.queue import launch_queue

    clean_up(Event, Project, Run)  # what an interrupted earlier run left
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    tag = uuid.uuid4().hex[:10]
    topic, dlq = f"k8x.bench.hub.{tag}", f"k8x.bench.hub.{tag}.dlq"
    queue_name = f"k8x-bench-{tag}"
    settings.K8X_QUEUE = queue_name
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_name: {"URL": settings.REDIS_URL}}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics(
        [NewTopic(topic, num_partitions=4, replication_factor=1), NewTopic(dlq, num_partitions=1, replication_factor=1)]
    ).values():
        fut.result(timeout=30)
    project = Project.objects.create(slug=f"bench-hub-{tag}")
    orders = Service.objects.create(project=project, name="orders", image="busybox")
    big = Service.objects.create(project=project, name="big-orders", image="busybox")
    Trigger.objects.create(service=orders, event_type="com.acme.order.created")
    Trigger.objects.create(service=big, event_type="com.acme.order.*", cel_expression="event.data.amount >= 900")
    source = f"/bench-hub/{tag}"
    groups: list[str] = []
    try:
        # 1. produce
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000})
        sample: list[HubMessage] = []
        t0 = time.perf_counter()
        for i in range(n):
            ev = ce_new(
                type="com.acme.order.created",
                source=source,
                subject=f"order-{i}",
                data={"amount": i % 1000, "customer": f"c{i % 97}", "items": [{"sku": "A1", "qty": 1}]},
            )
            key, headers, value = ce_to_kafka(ev)
            if i < 5000:
                sample.append(HubMessage(topic, 0, i, key, list(headers), value))
            while True:
                try:
                    producer.produce(topic, key=key, value=value, headers=headers)  # type: ignore[arg-type]
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(120)
        produce_s = time.perf_counter() - t0

        # 2. bare consumer
        group = f"k8x-bench-bare-{tag}"
        groups.append(group)
        bare = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        bare.subscribe([topic])
        seen = 0
        first: float | None = None
        while seen < n:
            msgs = bare.consume(num_messages=500, timeout=0.5)
            if msgs and first is None:
                first = time.perf_counter()
            for m in msgs:
                if m.error() is None:
                    m.value()
                    m.headers()
                    seen += 1
            if msgs:
                bare.commit(asynchronous=False)
        bare_s = time.perf_counter() - (first or 0)
        bare.close()

        # 3. the hub
        del producer
        rss_reset = _peak_rss_reset()
        rss_start = _current_rss_mb()
        group = f"k8x-bench-hub-{tag}"
        groups.append(group)
        hub = Hub(consumer=HubConsumer(topics=[topic], group=group), dead_letters=DeadLetterProducer(topic=dlq))
        originals = 0
        runs = 0
        first = None
        batch_times: list[float] = []
        cpu0 = time.process_time()
        while originals < n:
            b0 = time.perf_counter()
            result = hub.step()
            if result is None:
                continue
            if first is None:
                first = b0
            batch_times.append(time.perf_counter() - b0)
            # A broker restart during the run redelivers some: those are duplicates.
            originals += result.counts.get("matched", 0) + result.counts.get("unmatched", 0)
            runs += len(result.run_ids)
        hub_s = time.perf_counter() - (first or 0)
        hub_cpu = time.process_time() - cpu0
        hub.close()
        hub_rss = _peak_rss_mb()

        # Where the hub's time goes (pure CPU stages, on a sample, no I/O).
        index = trigger_index_load()
        t0 = time.perf_counter()
        decoded = [hub_decode(m, index=index) for m in sample]
        decode_us = (time.perf_counter() - t0) / len(sample) * 1e6
        t0 = time.perf_counter()
        for d in decoded:
            if isinstance(d, Decoded):
                hub_match(d, index=index)
        match_us = (time.perf_counter() - t0) / len(sample) * 1e6

        in_db = Event.objects.filter(source=source, outcome__in=["matched", "unmatched"]).count()
        runs_db = Run.objects.filter(service__project=project).count()
        jobs = launch_queue().count
        assert in_db == n, f"{in_db} events recorded, expected {n}"
        assert runs_db == runs, (runs_db, runs)
        batch_times.sort()
        rows: list[tuple[str, Any, Any, Any]] = [
            ("produce (setup)", n, produce_s, "-"),
            ("bare confluent-kafka consumer", n, bare_s, 1.0),
            ("hub (decode+match+record+enqueue+commit)", n, hub_s, (n / hub_s) / (n / bare_s)),
        ]
        print(f"\nhub benchmark: {n} events, {runs} runs ({runs / n:.2f} per event), {jobs} launch jobs in Redis")
        print(f"{'stage':<44}{'events':>8}{'seconds':>10}{'events/s':>12}{'ratio vs bare':>15}")
        for name, count, secs, ratio in rows:
            r = f"{ratio:.2f}" if isinstance(ratio, float) else ratio
            print(f"{name:<44}{count:>8}{secs:>10.2f}{count / secs:>12,.0f}{r:>15}")
        p50 = batch_times[len(batch_times) // 2]
        p99 = batch_times[int(len(batch_times) * 0.99)]
        print(f"hub batches: {len(batch_times)}, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
        per_event = hub_s / n * 1e6
        print(
            f"hub per event: {per_event:.0f} us = decode {decode_us:.0f} + match (incl. CEL) {match_us:.0f}"
            f" + record/enqueue/commit {per_event - decode_us - match_us:.0f}"
        )
        print(
            f"hub process CPU: {hub_cpu / hub_s:.2f} of a core on average"
            " (the rest of the time it waits for PostgreSQL, Redis and Kafka round trips)"
        )
        rss_ok = "MET" if hub_rss <= 150 else "NOT MET"
        scope = "hub phase" if rss_reset else "whole bench process"
        print(
            f"hub peak RSS ({scope}): {hub_rss:.0f} MB (target <= 150 MB: {rss_ok});"
            f" {rss_start:.0f} MB at its start (this process also ran the producer and the bare consumer)"
        )
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work skews all rows)")
        target = "MET" if n / hub_s >= 10_000 and (n / hub_s) / (n / bare_s) >= 0.5 else "NOT MET"
        print(f"target (>= 10,000 events/s and >= 0.5x bare): {target}")
    finally:
        q = Queue(queue_name, connection=launch_queue().connection)
        q.empty()
        q.delete(delete_jobs=True)
        clean_up(Event, Project, Run)
        for fut in admin.delete_topics([topic, dlq]).values():
            fut.result(timeout=30)
        try:
            for fut in admin.delete_consumer_groups(groups, request_timeout=30).values():
                fut.result()
        except Exception as exc:
            print(f"(consumer group clean-up: {exc})")


if __name__ == "__main__":
    main()
