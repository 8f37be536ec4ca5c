"""Where the hub's CPU goes, per mix: ``hub_process_batch`` in this process on
N events of ``bench_hub``'s mixes (1, 10, 100 % matched), batches of
``K8X_HUB_BATCH_SIZE``, against the real PostgreSQL and Redis (no Kafka: the
messages are built here, as the consumer would hand them over). Prints µs of
CPU per event and cProfile's top functions by own time. cProfile inflates code
made of many small calls (CEL conversion, decoding) several times over: read it
for where the calls go, and ``bench_hub``'s CPU per event (or a sampling
profiler such as py-spy on the ``k8x_hub`` process) for how long they take.

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench python bench/profile_hub.py [N] [MIXES] [TOP]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

from _common import django_ready
from bench_hub import _event_for, bench_setup, clean_up


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    mixes = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1,10,100").split(",")]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    django_ready()
    from django.conf import settings
    from rq import Queue

    from k8x_core.events.ce import ce_new, ce_to_kafka
    from k8x_core.hub.loop import hub_process_batch
    from k8x_core.hub.matching import trigger_index_load
    from k8x_core.kafka.consumer import HubMessage
    from k8x_core.models import Event, Project, Run, UnmatchedCount
    from k8x_core.process.collector import gc_freeze_after_setup
    from k8x_core.runs.queue import launch_queue

    _project, queue_name, tag = bench_setup()
    batch = int(settings.K8X_HUB_BATCH_SIZE)
    try:
        for mix in mixes:
            source = f"/bench-hub/{tag}/m{mix}"
            messages = []
            for i in range(n):
                type_, data = _event_for(mix, i, source)
                key, headers, value = ce_to_kafka(ce_new(type=type_, source=source, subject=f"s-{i}", data=data))
                messages.append(HubMessage("t", i % 4, i, key, list(headers), value))
            index = trigger_index_load()
            hub_process_batch(messages=messages[:batch], index=index)  # warm up
            rest = messages[batch:]
            gc_freeze_after_setup()  # as k8x_hub does before its loop
            prof = cProfile.Profile()
            cpu0 = time.process_time()
            prof.enable()
            for start in range(0, len(rest), batch):
                hub_process_batch(messages=rest[start : start + batch], index=index)
            prof.disable()
            cpu = time.process_time() - cpu0
            print(f"\n== mix {mix}%: {cpu / len(rest) * 1e6:.1f} µs CPU per event (profiled), batch {batch}")
            pstats.Stats(prof).sort_stats("tottime").print_stats(top)
            UnmatchedCount.objects.filter(type__startswith="bench.noise.").delete()
    finally:
        q = Queue(queue_name, connection=launch_queue().connection)
        q.empty()
        q.delete(delete_jobs=True)
        clean_up(Event, Project, Run, UnmatchedCount)


if __name__ == "__main__":
    main()
