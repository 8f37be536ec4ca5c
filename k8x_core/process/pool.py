"""Running one job's independent, I/O-bound calls on a few threads at once.

A worker's chunk of launches spends most of its time waiting on the API server
and PostgreSQL; launched one after another, a chunk of 25 takes 25 round trips
of each. ``pool_map`` runs them on up to ``threads`` threads (the caller's
share of ``K8X_LAUNCH_THREADS``).

The threads belong to the process and outlive one call: each has a database
connection of its own (Django's are per thread), and opening one costs ~30 ms
and a few ms of CPU on both ends (a backend process, SCRAM authentication), which
a burst of chunks paid on every thread of every chunk. A kept connection
follows Django's rules at the start of each call (``close_old_connections``:
replaced past CONN_MAX_AGE or when it broke); a thread left idle for
``IDLE_SECONDS`` closes its connection and ends, so an idle worker holds none.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import close_old_connections, connections

T = TypeVar("T")
R = TypeVar("R")

IDLE_SECONDS = 60.0


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What one call returned, or the exception it raised."""

    value: R | None = None
    error: BaseException | None = None


class _Threads:
    """The process's pool threads: a task goes to an idle thread, or to a new one."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        # (the task, then what to call once its thread is idle again)
        self.tasks: queue.SimpleQueue[tuple[Callable[[], None], Callable[[], None]]] = queue.SimpleQueue()
        self.idle = 0  # threads waiting for a task and not promised one
        self.alive = 0
        self.serial = itertools.count(1)

    def submit(self, task: Callable[[], None], *, then: Callable[[], None]) -> None:
        """Run ``task`` on a pool thread; ``then`` once that thread counts as idle
        again (so a caller that waits for ``then`` finds it idle on its next call)."""
        with self.lock:
            if self.idle > 0:
                self.idle -= 1  # promised: an idle thread takes it
            else:
                self.alive += 1
                name = f"k8x-pool-{next(self.serial)}"
                threading.Thread(target=self._run, name=name, daemon=True).start()
            self.tasks.put((task, then))

    def _run(self) -> None:
        try:
            while True:
                try:
                    task, then = self.tasks.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    with self.lock:
                        if self.idle > 0 and self.tasks.empty():
                            self.idle -= 1
                            self.alive -= 1
                            return
                    continue  # a task was promised meanwhile
                try:
                    close_old_connections()
                    task()
                finally:
                    with self.lock:
                        self.idle += 1
                    then()
        finally:
            connections.close_all()


_threads: _Threads | None = None
_threads_lock = threading.Lock()


def _pool() -> _Threads:
    global _threads
    with _threads_lock:
        if _threads is None or _threads.pid != os.getpid():
            # A forked child does not inherit the parent's threads.
            _threads = _Threads()
        return _threads


def pool_map(fn: Callable[[T], R], items: Sequence[T], *, threads: int) -> list[Outcome[R]]:
    """``fn`` on every item, on up to ``threads`` threads; outcomes in the items' order.
    One item, or one thread: run here, on the caller's thread (and its connection)."""
    count = max(1, min(int(threads), len(items)))
    outcomes: list[Outcome[R] | None] = [None] * len(items)

    def one(index: int) -> None:
        try:
            outcomes[index] = Outcome(value=fn(items[index]))
        except Exception as exc:
            outcomes[index] = Outcome(error=exc)

    if count == 1:
        for index in range(len(items)):
            one(index)
    else:
        # next() on a shared count is atomic (the GIL), so each item goes to one thread.
        next_index = itertools.count()
        finished = threading.Semaphore(0)

        def work() -> None:
            while (index := next(next_index)) < len(items):
                one(index)

        pool = _pool()
        for _ in range(count):
            pool.submit(work, then=finished.release)
        for _ in range(count):
            finished.acquire()
    return [o if o is not None else Outcome(error=RuntimeError("not run")) for o in outcomes]
