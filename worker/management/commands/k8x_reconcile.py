"""``manage.py k8x_reconcile``: re-enqueue stale ``queued`` runs whose launch
job is not in Redis, pending notification deliveries without a job, and the
notifications of ended runs whose job was lost
(worker.reconcile), every half K8X_RECONCILE_AFTER_SECONDS. SIGTERM/SIGINT end
the loop after the current pass. ``--health-port``: /healthz, /readyz, /metrics
(k8x_core.process.health)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, connection
from redis.exceptions import RedisError

from k8x_core.process.collector import gc_freeze_after_setup
from k8x_core.process.health import ProcessHealth, health_port_argument, health_serve
from k8x_core.process.shutdown import shutdown_on_signals
from worker.reconcile import deliveries_reconcile, notify_reconcile, runs_reconcile

logger = logging.getLogger("worker.reconcile")


class Command(BaseCommand):
    help = "Re-enqueue queued runs that have no launch job in Redis (after Redis loss)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, print the count, exit")
        parser.add_argument("--older-than", type=float, default=None, help="seconds (K8X_RECONCILE_AFTER_SECONDS)")
        health_port_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = options["older_than"]
        if older_than is None:
            older_than = float(settings.K8X_RECONCILE_AFTER_SECONDS)
        if options["once"]:
            self.stdout.write(str(runs_reconcile(older_than=older_than)))
            return
        stopping = threading.Event()
        shutdown_on_signals(stop=stopping.set, what="stopping after this pass")
        interval = max(older_than / 2, 5.0)
        health = ProcessHealth(role="reconciler")
        problem: dict[str, str] = {}
        health.ready_check = lambda: dict(problem)
        health_serve(health=health, port=options["health_port"])
        gc_freeze_after_setup()
        while not stopping.is_set():
            health.beat()
            try:
                runs_reconcile(older_than=older_than)
                deliveries_reconcile(older_than=older_than)
                notify_reconcile(older_than=older_than)
                problem.clear()
            except (DatabaseError, RedisError) as exc:
                # Lost database or Redis: try again next round.
                logger.warning("reconcile pass failed: %s", exc)
                problem["reconcile"] = str(exc).strip()[:200]
                connection.close()
            end = time.monotonic() + interval
            while not stopping.is_set() and time.monotonic() < end:
                health.beat()
                stopping.wait(0.2)
