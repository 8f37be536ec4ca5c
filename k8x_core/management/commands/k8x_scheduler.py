"""``manage.py k8x_scheduler``: emit ``k8x.schedule`` events for services
whose cron schedule is due (see k8x_core.events.scheduler), sync git
repositories and apply retention (k8x_core.retention) when due. Several may run at
once; each due time is emitted once. With K8X_LEADER_ELECTION only the holder
of the Lease ``k8x-scheduler`` makes passes (k8x_core.process.leader).
``--health-port``: /healthz, /readyz, /metrics. SIGTERM/SIGINT: finish the
pass, release the Lease, exit 0."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from k8x_core.catalog.git import repos_sync_due
from k8x_core.events.scheduler import schedule_process_one
from k8x_core.process.collector import gc_freeze_after_setup
from k8x_core.process.health import ProcessHealth, health_port_argument, health_serve
from k8x_core.process.leader import leader_elector_for, leader_loop
from k8x_core.process.shutdown import shutdown_on_signals
from k8x_core.retention import RetentionResult, retention_apply

logger = logging.getLogger("k8x_core.events.scheduler")


class SchedulerPasses:
    """The scheduler's work as a leader-loop actor: ``step()`` is one pass, then the
    wait until the next one (longer after a database error)."""

    def __init__(self, *, interval: float, stopping: threading.Event) -> None:
        self.interval = interval
        self.backoff = interval
        self.stopping = stopping
        self.stopped = threading.Event()
        # Monotonic time of the next retention pass (K8X_RETENTION_INTERVAL_SECONDS).
        self.retention_next = 0.0

    def start(self) -> None:
        logger.info("scheduler running, a pass every %.1f s", self.interval)

    def stop(self) -> None:
        self.stopped.set()

    def step(self) -> int:
        emitted = 0
        try:
            emitted = schedule_process_one()
            self.backoff = self.interval
            if emitted:
                logger.info("emitted %d schedule event(s)", emitted)
            # Periodic git sync (K8X_GIT_SYNC_INTERVAL_SECONDS; a no-op at 0),
            # one repository per pass so cron ticks are never held up long.
            repos_sync_due(now=timezone.now(), limit=1)
            self.retention_step()
        except DatabaseError:
            # The database is away: wait and try again, never crash.
            logger.exception("scheduler pass failed; retrying")
            self.backoff = min(self.backoff * 2, 30.0)
        except Exception:
            # Whatever a project wrote (schedules are isolated per service in
            # the pass; this is the last line): log, back off, go on.
            logger.exception("scheduler pass failed; retrying")
            self.backoff = min(self.backoff * 2, 30.0)
        # Like a request boundary: drop connections that broke or aged out.
        close_old_connections()
        # The wait ends early when the process stops or the lease is lost.
        waited = 0.0
        while waited < self.backoff and not self.stopping.is_set() and not self.stopped.is_set():
            self.stopping.wait(min(0.2, self.backoff - waited))
            waited += 0.2
        return emitted

    def retention_step(self) -> RetentionResult | None:
        """A retention pass when one is due; a pass that ran out of batches goes on in the next scheduler pass."""
        every = settings.K8X_RETENTION_INTERVAL_SECONDS
        if every <= 0 or time.monotonic() < self.retention_next:
            return None
        result = retention_apply(now=timezone.now())
        self.retention_next = time.monotonic() + (every if result.complete else 0)
        return result


class Command(BaseCommand):
    help = "Emit k8x.schedule events for services whose cron schedule is due."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes (1 to 5)")
        parser.add_argument("--once", action="store_true", help="one pass, then exit (no leader election)")
        health_port_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        interval = min(max(float(options["interval"]), 1.0), 5.0)
        stopping = threading.Event()
        if options["once"]:
            stopping.set()
            SchedulerPasses(interval=interval, stopping=stopping).step()
            return

        shutdown_on_signals(stop=stopping.set, what="stopping after this pass")
        health = ProcessHealth(role="scheduler")
        health_serve(health=health, port=options["health_port"])
        gc_freeze_after_setup()
        leader_loop(
            elector=leader_elector_for(role="scheduler", name="k8x-scheduler"),
            actor_create=lambda: SchedulerPasses(interval=interval, stopping=stopping),
            health=health,
            stopping=stopping,
        )
        logger.info("scheduler stopped")
