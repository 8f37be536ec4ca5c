"""``manage.py k8x_send --type T --source S [--subject X] [--data JSON|@file]``:
send one CloudEvent from the shell, straight to Kafka.

Shell access is operator access: without ``--project`` the event is
platform-wide (any project's services may match); with it, it is scoped to
that project like an API key's. Prints ``{"id", "correlation_id"}``; exits 1
with the reason when the event is invalid or Kafka does not take it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from k8x_core.events.ce import CloudEventInvalid, ce_new
from k8x_core.events.ingest import IngestRefused, Sender, event_accept
from k8x_core.models import Project


def _load_data(raw: str | None) -> Any:
    if raw is None:
        return None
    if raw.startswith("@"):
        path = Path(raw[1:])
        try:
            raw = path.read_text()
        except OSError as exc:
            raise CommandError(f"--data {raw}: cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CommandError(f"--data is not valid JSON: {exc}") from exc


class Command(BaseCommand):
    help = "Send a CloudEvent to Kafka."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--type", required=True, help="event type, e.g. com.acme.order.created")
        parser.add_argument("--source", required=True, help="event source, e.g. /shop")
        parser.add_argument("--subject", help="event subject")
        parser.add_argument("--data", help="JSON data, or @path to a JSON file")
        parser.add_argument("--id", help="event id (default: a new uuid)")
        parser.add_argument("--project", help="scope the event to this project's services")
        parser.add_argument("--correlation-id", help="flow id (default: a new one)")

    def handle(self, *args: Any, **options: Any) -> None:
        data = _load_data(options["data"])
        project_slug = options["project"]
        if project_slug and not Project.objects.filter(slug=project_slug).exists():
            raise CommandError(f"no project {project_slug!r}")
        extensions = {"correlationid": options["correlation_id"]} if options["correlation_id"] else None
        try:
            event = ce_new(
                type=options["type"],
                source=options["source"],
                subject=options["subject"],
                data=data,
                id=options["id"],
                extensions=extensions,
            )
            # No rate limit from the shell (empty rate key).
            sender = Sender(kind="cli", project_slug=project_slug, rate_key="")
            [accepted] = event_accept(events=[event], sender=sender, endpoint="cli")
        except CloudEventInvalid as exc:
            raise CommandError(f"invalid event: {exc.message}") from exc
        except IngestRefused as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps({"id": accepted.id, "correlation_id": accepted.correlation_id}))
