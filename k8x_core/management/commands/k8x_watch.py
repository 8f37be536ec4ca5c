"""``manage.py k8x_watch``: follow K8X's Jobs and pods, move runs through their
statuses and keep their logs (see ``k8x_core.watch.watcher``).

SIGTERM/SIGINT: stop after the current step, exit 0.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from k8x_core.watch.watcher import Watcher

logger = logging.getLogger("k8x_core.watch.watcher")


class Command(BaseCommand):
    help = "Watch K8X's Kubernetes Jobs and pods: run statuses, live logs, stored logs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--namespace", help="watch one namespace only (default: the whole cluster)")
        parser.add_argument("--no-logs", action="store_true", help="do not follow logs live (stored at the end)")

    def handle(self, *args: Any, **options: Any) -> None:
        watcher = Watcher(namespace=options["namespace"], follow_logs=not options["no_logs"])

        def _stop(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %s: stopping", signum)
            watcher.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        logger.info("watching K8X Jobs and pods in %s", options["namespace"] or "all namespaces")
        watcher.run_forever()
        logger.info("watcher stopped")
