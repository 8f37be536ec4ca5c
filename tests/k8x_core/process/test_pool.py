"""k8x_core.process.pool.pool_map: outcomes in order, errors isolated, and each
thread's own database connection (the real PostgreSQL) closed when it ends."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connections

from k8x_core.models import Project
from k8x_core.process.pool import pool_map


@pytest.mark.django_db(transaction=True)
def test_pool_map_runs_on_threads_with_their_own_connections_and_closes_them() -> None:
    Project.objects.create(slug="pooled")
    wrappers: dict[int, Any] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(4, timeout=10)

    def fn(i: int) -> str:
        if i < 4:
            barrier.wait()  # the first four run at the same time: four threads
        with lock:
            wrappers[threading.get_ident()] = connections["default"]  # this thread's own
        if i == 5:
            raise ValueError("five")
        return f"{i}:{Project.objects.get(slug='pooled').slug}"

    outcomes = pool_map(fn, list(range(10)), threads=4)
    assert [o.value for o in outcomes] == [None if i == 5 else f"{i}:pooled" for i in range(10)]
    assert isinstance(outcomes[5].error, ValueError) and all(o.error is None for i, o in enumerate(outcomes) if i != 5)
    assert len(wrappers) == 4 and threading.get_ident() not in wrappers
    assert all(w.connection is None for w in wrappers.values())  # every thread's connection closed


@pytest.mark.django_db
def test_one_thread_runs_on_the_callers_thread() -> None:
    seen: list[int] = []

    def fn(i: int) -> int:
        seen.append(threading.get_ident())
        return i * 2

    outcomes = pool_map(fn, [1, 2, 3], threads=1)
    assert [o.value for o in outcomes] == [2, 4, 6]
    assert set(seen) == {threading.get_ident()}
    assert [o.value for o in pool_map(lambda i: i, [7], threads=8)] == [7]
