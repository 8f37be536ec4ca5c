"""Running one job's independent, I/O-bound calls on a few threads at once.

A worker's chunk of launches spends most of its time waiting on the API server
and PostgreSQL; launched one after another, a chunk of 25 takes 25 round trips
of each. ``pool_map`` runs them on up to ``threads`` threads (the caller's
share of ``K8X_LAUNCH_THREADS``). Each thread has a database connection of its
own (Django's are per thread), closed when the thread ends, so a pool never
leaves a connection behind; one call's work never outlives the call.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import connections

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What one call returned, or the exception it raised."""

    value: R | None = None
    error: BaseException | None = None


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

        def work() -> None:
            try:
                while (index := next(next_index)) < len(items):
                    one(index)
            finally:
                connections.close_all()

        workers = [threading.Thread(target=work, name=f"k8x-pool-{n}", daemon=True) for n in range(count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return [o if o is not None else Outcome(error=RuntimeError("not run")) for o in outcomes]
