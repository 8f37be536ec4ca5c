"""``manage.py k8x_watch``: follow K8X's Jobs and pods, move runs through their
statuses and keep their logs (see ``k8x_core.watch.watcher``).

With K8X_LEADER_ELECTION, only the holder of the Lease ``k8x-watcher`` (in
K8X_LEASE_NAMESPACE) watches; the others wait as standbys and take over when it
stops renewing (k8x_core.process.leader). ``--health-port``: /healthz, /readyz,
/metrics. SIGTERM/SIGINT: stop after the current step, release the Lease, exit 0.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from k8x_core.process.collector import gc_freeze_after_setup
from k8x_core.process.health import ProcessHealth, health_port_argument, health_serve
from k8x_core.process.leader import leader_elector_for, leader_loop
from k8x_core.process.shutdown import shutdown_on_signals
from k8x_core.watch.watcher import Watcher

logger = logging.getLogger("k8x_core.watch.watcher")


class Command(BaseCommand):
    help = "Watch K8X's Kubernetes Jobs and pods: run statuses, live logs, stored logs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--namespace", help="watch one namespace only (default: the whole cluster)")
        parser.add_argument("--no-logs", action="store_true", help="do not follow logs live (stored at the end)")
        health_port_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        namespace = options["namespace"]
        stopping = threading.Event()

        shutdown_on_signals(stop=stopping.set, what="stopping")
        health = ProcessHealth(role="watcher")
        health_serve(health=health, port=options["health_port"])
        # One watcher per namespace it watches: a --namespace watcher has its own Lease.
        elector = leader_elector_for(role="watcher", name=f"k8x-watcher-{namespace}" if namespace else "k8x-watcher")

        def watcher_create() -> Watcher:
            logger.info("watching K8X Jobs and pods in %s", namespace or "all namespaces")
            return Watcher(namespace=namespace, follow_logs=not options["no_logs"])

        gc_freeze_after_setup()
        try:
            leader_loop(elector=elector, actor_create=watcher_create, health=health, stopping=stopping)
        finally:
            connection.close()
        logger.info("watcher stopped")
