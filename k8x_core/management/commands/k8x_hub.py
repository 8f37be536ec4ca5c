"""``manage.py k8x_hub``: consume the events topic and turn events into runs.

SIGTERM/SIGINT: the current batch is finished and committed, the consumer
leaves its group, exit 0. Metrics (k8x_core.metrics.REGISTRY) are served on
``K8X_HUB_METRICS_PORT`` (default 9101, 0 = off) at ``/metrics``.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from prometheus_client import start_http_server

from k8x_core.hub.loop import hub_create
from k8x_core.metrics import REGISTRY

logger = logging.getLogger("k8x_core.hub.loop")


class Command(BaseCommand):
    help = "Consume CloudEvents from Kafka, record them and queue the runs they trigger."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--topic", action="append", help="topic to consume (repeatable); default K8X_EVENTS_TOPIC")
        parser.add_argument("--group", help="consumer group; default K8X_HUB_GROUP")
        parser.add_argument("--metrics-port", type=int, default=None, help="default K8X_HUB_METRICS_PORT (9101)")

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["metrics_port"]
        if port is None:
            port = int(settings.K8X_HUB_METRICS_PORT)
        if port:
            try:
                start_http_server(port, addr=settings.K8X_HUB_METRICS_ADDR, registry=REGISTRY)
                logger.info("metrics on :%s/metrics", port)
            except OSError as exc:
                # Metrics are not worth stopping the hub for.
                logger.error("metrics server not started on port %s: %s", port, exc)
        hub = hub_create(topics=options["topic"], group=options["group"])

        def _stop(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %s: finishing the current batch, then leaving the group", signum)
            hub.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        logger.info("hub consuming %s in group %s", hub.consumer.topics, options["group"] or settings.K8X_HUB_GROUP)
        hub.run()
        logger.info("hub stopped")
