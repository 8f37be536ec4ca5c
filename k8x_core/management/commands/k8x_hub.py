"""``manage.py k8x_hub``: consume the events topic and turn events into runs.

SIGTERM/SIGINT: the current batch is finished and committed, the consumer
leaves its group, exit 0. ``/healthz``, ``/readyz`` and ``/metrics``
(k8x_core.process.health) are served on ``--health-port`` (``--metrics-port``
is its older name), default K8X_HEALTH_PORT (0 = off).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from k8x_core.hub.loop import hub_create
from k8x_core.process.collector import gc_freeze_after_setup
from k8x_core.process.health import ProcessHealth, health_port_argument, health_serve
from k8x_core.process.shutdown import shutdown_on_signals

logger = logging.getLogger("k8x_core.hub.loop")


class Command(BaseCommand):
    help = "Consume CloudEvents from Kafka, record them and queue the runs they trigger."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--topic", action="append", help="topic to consume (repeatable); default K8X_EVENTS_TOPIC")
        parser.add_argument("--group", help="consumer group; default K8X_HUB_GROUP")
        health_port_argument(parser, "--metrics-port")

    def handle(self, *args: Any, **options: Any) -> None:
        health = ProcessHealth(role="hub")
        health_serve(health=health, port=options["health_port"])
        hub = hub_create(topics=options["topic"], group=options["group"])

        shutdown_on_signals(stop=hub.stop, what="finishing the current batch, then leaving the group")
        hub.refresh_index(force=True)
        gc_freeze_after_setup()
        logger.info("hub consuming %s in group %s", hub.consumer.topics, options["group"] or settings.K8X_HUB_GROUP)
        # Hub.run() with a heartbeat per step.
        while not hub.stopping:
            health.beat()
            hub.step()
        hub.close()
        logger.info("hub stopped")
