"""Console runs list with 100k runs: the page as a project member sees it, against
the same page's bare SQL query (the physical limit of the database for that page).

Cases: the first page, a page 50k runs deep (keyset cursor), a status filter, a
service filter, and for comparison the OFFSET/COUNT(*) pagination the console
does not use. Times are medians of R requests through Django's full stack
(middleware, session, templates) in this process.

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench python bench/bench_console.py [N] [R]
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from _common import django_ready

BUDGET_MS = 200.0


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches and connections
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    django_ready()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.paginator import Paginator
    from django.db import connection
    from django.test import Client

    settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
    from k8x_core.models import Membership, Project, Role, Run, RunStatus, Service

    Project.objects.filter(slug__startswith="console-bench").delete()
    User.objects.filter(username="console-bench").delete()
    project = Project.objects.create(slug="console-bench")
    other = Project.objects.create(slug="console-bench-other")
    services = [Service.objects.create(project=project, name=f"svc-{i}", image="busybox") for i in range(20)]
    foreign = Service.objects.create(project=other, name="foreign", image="busybox")
    user = User.objects.create_user("console-bench", password=uuid.uuid4().hex)
    Membership.objects.create(project=project, user=user, role=Role.USER)

    statuses = [RunStatus.SUCCEEDED] * 8 + [RunStatus.FAILED, RunStatus.RUNNING]
    t0 = time.perf_counter()
    batch = []
    for i in range(n):
        batch.append(
            Run(service=services[i % len(services)], trigger_kind="manual", status=statuses[i % len(statuses)])
        )
        if len(batch) == 5000:
            Run.objects.bulk_create(batch)
            batch = []
    Run.objects.bulk_create(batch)
    Run.objects.bulk_create(
        [Run(service=foreign, trigger_kind="manual", status=RunStatus.SUCCEEDED) for _ in range(n // 5)]
    )
    # Spread creation times over 30 days (bulk_create gave them all "now").
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE k8x_core_run SET created_at = now() - (random() * interval '30 days') "
            "WHERE service_id IN (SELECT id FROM k8x_core_service WHERE project_id IN (%s, %s))",
            [project.pk, other.pk],
        )
        cur.execute("ANALYZE k8x_core_run")
    print(f"created {n} + {n // 5} runs in {time.perf_counter() - t0:.1f} s")

    client = Client()
    client.force_login(user)

    def page(query: str) -> str:
        response = client.get("/runs/" + query)
        assert response.status_code == 200, response.status_code
        return response.content.decode()

    # A cursor 50k runs deep, as the "Older" link would carry it.
    deep = (
        Run.objects.filter(service__project=project)
        .order_by("-created_at", "-id")
        .values_list("created_at", "id")[n // 2]
    )
    deep_cursor = f"{deep[0].isoformat()}~{deep[1]}".replace("+", "%2B")

    def raw(sql: str, params: list) -> None:
        with connection.cursor() as cur:
            cur.execute(sql, params)
            cur.fetchall()

    # Constant SQL fragments only; every value is a bound parameter.
    visible = "service_id IN (SELECT s.id FROM k8x_core_service s WHERE s.project_id = %s)"
    order = "ORDER BY created_at DESC, id DESC LIMIT 51"
    cases: list[tuple[str, str, str, list[Any]]] = [
        (
            "first page",
            "",
            f"SELECT * FROM k8x_core_run WHERE {visible} {order}",  # noqa: S608
            [project.pk],
        ),
        (
            "50k deep (keyset)",
            f"?older={deep_cursor}",
            f"SELECT * FROM k8x_core_run WHERE {visible} AND (created_at, id) < (%s, %s) {order}",  # noqa: S608
            [project.pk, deep[0], deep[1]],
        ),
        (
            "status=failed",
            "?status=failed",
            f"SELECT * FROM k8x_core_run WHERE {visible} AND status = 'failed' {order}",  # noqa: S608
            [project.pk],
        ),
        (
            "one service",
            f"?service={services[3].pk}",
            "SELECT * FROM k8x_core_run WHERE service_id = %s ORDER BY created_at DESC, id DESC LIMIT 51",
            [services[3].pk],
        ),
    ]
    rows = []
    for name, query, sql, params in cases:
        view_ms = median_ms(functools.partial(page, query), repeat)
        sql_ms = median_ms(functools.partial(raw, sql, params), repeat)
        rows.append((name, view_ms, sql_ms))

    def offset_page() -> None:
        qs = Run.objects.filter(service__project=project).order_by("-created_at")
        p = Paginator(qs, 50)
        list(p.page(p.num_pages // 2).object_list)

    offset_ms = median_ms(offset_page, max(3, repeat // 3))

    print(f"\nRuns list, {n} runs visible to the user (+{n // 5} of another project), median of {repeat}")
    print(f"{'case':<22}{'view ms':>10}{'SQL ms':>10}{'view/SQL':>10}{'budget':>9}{'ok':>5}")
    for name, view_ms, sql_ms in rows:
        ok = "yes" if view_ms <= BUDGET_MS else "NO"
        print(f"{name:<22}{view_ms:>10.1f}{sql_ms:>10.2f}{view_ms / sql_ms:>10.1f}{BUDGET_MS:>9.0f}{ok:>5}")
    print(f"{'(OFFSET+COUNT, 50k deep)':<22}{'—':>10}{offset_ms:>10.1f}{'':>10}  query alone, not used")

    Project.objects.filter(slug__startswith="console-bench").delete()
    User.objects.filter(username="console-bench").delete()
    if any(view_ms > BUDGET_MS for _, view_ms, _ in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
