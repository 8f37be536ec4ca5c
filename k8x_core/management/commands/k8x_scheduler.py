"""``manage.py k8x_scheduler``: emit ``k8x.schedule`` events for services
whose cron schedule is due (see k8x_core.events.scheduler). Several may run at
once; each due time is emitted once. SIGTERM/SIGINT: finish the pass, exit 0."""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from k8x_core.catalog.git import repos_sync_due
from k8x_core.events.scheduler import schedule_process_one

logger = logging.getLogger("k8x_core.events.scheduler")


class Command(BaseCommand):
    help = "Emit k8x.schedule events for services whose cron schedule is due."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes (1 to 5)")
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        interval = min(max(float(options["interval"]), 1.0), 5.0)
        self.shutdown = False

        def _stop(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %s: stopping after this pass", signum)
            self.shutdown = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        logger.info("scheduler running, a pass every %.1f s", interval)
        backoff = interval
        while not self.shutdown:
            try:
                emitted = schedule_process_one()
                backoff = interval
                if emitted:
                    logger.info("emitted %d schedule event(s)", emitted)
                # Periodic git sync (K8X_GIT_SYNC_INTERVAL_SECONDS; a no-op at 0),
                # one repository per pass so cron ticks are never held up long.
                repos_sync_due(now=timezone.now(), limit=1)
            except DatabaseError:
                # The database is away: wait and try again, never crash.
                logger.exception("scheduler pass failed; retrying")
                backoff = min(backoff * 2, 30.0)
            except Exception:
                # Whatever a project wrote (schedules are isolated per service
                # in the pass, this is the last line): log, back off, go on.
                logger.exception("scheduler pass failed; retrying")
                backoff = min(backoff * 2, 30.0)
            if options["once"]:
                break
            # Like a request boundary: drop connections that broke or aged out.
            close_old_connections()
            deadline = time.monotonic() + backoff
            while not self.shutdown and time.monotonic() < deadline:
                time.sleep(min(0.2, deadline - time.monotonic()))
        logger.info("scheduler stopped")
