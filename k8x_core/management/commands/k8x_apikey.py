"""``manage.py k8x_apikey --project P --name N [--role user|admin|owner]``:
create an API key and print it once (only its hash is stored)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from k8x_core.events.apikeys import ApiKeyCapReached, apikey_create
from k8x_core.models import Project, Role


class Command(BaseCommand):
    help = "Create an API key for a project and print it (shown once; store it now)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--name", required=True, help="what the key is for, e.g. ci")
        parser.add_argument(
            "--role",
            choices=Role.values,
            default=Role.USER,
            help="what the key may do in the management API (default: user, least privilege)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r} (create it with k8x_apply or in the console)")
        name = options["name"].strip()
        if not name:
            raise CommandError("--name must not be empty")
        try:
            key, raw = apikey_create(project=project, name=name, role=Role(options["role"]))
        except ApiKeyCapReached as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"API key {key.name!r} ({key.role}) for project {project.slug} (prefix {key.prefix}); shown only once:"
        )
        self.stdout.write(raw)
