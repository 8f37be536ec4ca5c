"""k8x_core.process.pool.pool_map: outcomes in order, errors isolated; the
threads, each with its own database connection (the real PostgreSQL), are kept
for the next call and close their connections when idle."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connections

from k8x_core.models import Project
from k8x_core.process import pool
from k8x_core.process.pool import pool_map


@pytest.mark.django_db(transaction=True)
def test_pool_map_runs_on_threads_with_their_own_connections_kept_until_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "IDLE_SECONDS", 1.0)
    monkeypatch.setattr(pool, "_threads", None)  # this test's own threads
    Project.objects.create(slug="pooled")
    wrappers: dict[int, Any] = {}
    ran_on: set[threading.Thread] = set()
    lock = threading.Lock()
    barrier = threading.Barrier(4, timeout=10)

    def fn(i: int) -> str:
        if i < 4:
            barrier.wait()  # the first four run at the same time: four threads
        with lock:
            wrappers[threading.get_ident()] = connections["default"]  # this thread's own
            ran_on.add(threading.current_thread())
        if i == 5:
            raise ValueError("five")
        return f"{i}:{Project.objects.get(slug='pooled').slug}"

    outcomes = pool_map(fn, list(range(10)), threads=4)
    assert [o.value for o in outcomes] == [None if i == 5 else f"{i}:pooled" for i in range(10)]
    assert isinstance(outcomes[5].error, ValueError) and all(o.error is None for i, o in enumerate(outcomes) if i != 5)
    assert len(wrappers) == 4 and threading.get_ident() not in wrappers
    first = dict(wrappers)
    assert all(w.connection is not None for w in first.values())  # kept for the next call

    # The next call runs on the same threads and their open connections.
    wrappers.clear()
    barrier.reset()
    assert [o.value for o in pool_map(fn, [0, 1, 2, 3], threads=4)] == [f"{i}:pooled" for i in range(4)]
    assert set(wrappers) == set(first)
    assert all(wrappers[t] is first[t] and first[t].connection is not None for t in first)

    # Idle for IDLE_SECONDS: each thread closes its connection and ends.
    deadline = time.monotonic() + 10
    while pool._pool().alive and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pool._pool().alive == 0
    assert all(w.connection is None for w in first.values())
    assert len(ran_on) == 4 and not any(t.is_alive() for t in ran_on)


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
