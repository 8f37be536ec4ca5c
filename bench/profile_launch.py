"""CPU per launch, in this process: ``run_launch`` for N queued runs one after
another (warm: the first launch is not counted), under cProfile; prints CPU ms
per launch (``time.process_time``, with and without the profiler) and the
functions that take it.

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench python bench/profile_launch.py [N] [TOP]
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
import uuid

from _common import django_ready, namespace_cleanup


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    django_ready()
    from k8x_core.models import Project, Run, Service, TriggerKind
    from k8x_core.runs.configs import config_set, secret_set
    from k8x_core.runs.launch import run_launch

    project = Project.objects.create(slug=f"prof-{uuid.uuid4().hex[:6]}")
    service = Service.objects.create(
        project=project, name="prof", image="localhost:5000/k8x/busybox:1", command=["sh", "-c", "echo hi"]
    )
    Project.objects.filter(pk=project.pk).update(quota={"pods": "1"})  # Jobs, not hundreds of pods
    project.refresh_from_db()
    config_set(key="REGION", value="eu", project=project)
    config_set(key="LEVEL", value="service", service=service)
    secret_set(key="TOKEN", value="s3cret", service=service)

    def runs(count: int) -> list[Run]:
        return [
            Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, params={"i": i}, correlation_id="p")
            for i in range(count)
        ]

    try:
        run_launch(run_id=runs(1)[0].pk)  # warm-up: namespace, secret sync, admission
        plain = runs(n)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for run in plain:
            run_launch(run_id=run.pk)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        profiled = runs(n)
        profiler = cProfile.Profile()
        cpu1 = time.process_time()
        profiler.enable()
        for run in profiled:
            run_launch(run_id=run.pk)
        profiler.disable()
        cpu_prof = time.process_time() - cpu1
        print(
            f"{n} launches: CPU {cpu / n * 1000:.2f} ms per launch, wall {wall / n * 1000:.2f} ms "
            f"(under cProfile: CPU {cpu_prof / n * 1000:.2f} ms)"
        )
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        # Cumulative time includes waiting on the API server and PostgreSQL; own time is CPU.
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        print(out.getvalue())
    finally:
        namespace_cleanup(project.namespace)
        Run.objects.filter(service__project=project).delete()
        project.delete()


if __name__ == "__main__":
    main()
