"""Secrets from the shell. Values are read from stdin, never from argv, so
they stay out of shell history and process listings."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from k8x_core.audit import Actor
from k8x_core.keyrotation import RotationFailed, encrypted_fields_rotate
from k8x_core.models import Project, Secret, Service
from k8x_core.runs.configs import secret_set


class Command(BaseCommand):
    help = "Set, list or re-encrypt secrets. `set` reads the value from stdin."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        set_parser = sub.add_parser("set", help="set KEY from stdin")
        set_parser.add_argument("key")
        set_parser.add_argument("--project", help="project slug (omit for a platform secret)")
        set_parser.add_argument("--service", help="service name within --project")
        list_parser = sub.add_parser("list", help="list secret keys (never values)")
        list_parser.add_argument("--project")
        sub.add_parser(
            "rotate",
            help="re-encrypt every encrypted value (secrets, webhook secrets, git credentials) with the first key",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "set":
            self._set(options)
        elif action == "list":
            self._list(options.get("project"))
        else:
            self._rotate()

    def _scope(self, project_slug: str | None, service_name: str | None) -> tuple[Project | None, Service | None]:
        if service_name and not project_slug:
            raise CommandError("--service needs --project")
        project = service = None
        if project_slug:
            project = Project.objects.filter(slug=project_slug).first()
            if project is None:
                raise CommandError(f"no project {project_slug!r}")
        if service_name:
            service = Service.objects.filter(project=project, name=service_name).first()
            if service is None:
                raise CommandError(f"no service {service_name!r} in project {project_slug!r}")
        return project, service

    def _set(self, options: dict[str, Any]) -> None:
        project, service = self._scope(options.get("project"), options.get("service"))
        if sys.stdin.isatty():
            self.stderr.write("value (end with Ctrl-D): ")
        value = sys.stdin.read()
        # A trailing newline from `echo` or a heredoc is not part of the value.
        if value.endswith("\n"):
            value = value[:-1]
            if value.endswith("\r"):
                value = value[:-1]
        if not value:
            raise CommandError("empty value on stdin: nothing was set")
        try:
            secret = secret_set(
                key=options["key"],
                value=value,
                project=project,
                service=service,
                actor=Actor("system", name="k8x_secret"),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"secret {secret.key} set at {secret.scope} scope")

    def _list(self, project_slug: str | None) -> None:
        qs = Secret.objects.select_related("project", "service")
        if project_slug:
            qs = qs.filter(project__slug=project_slug)
        for s in qs:
            where = s.scope if s.project is None else f"{s.scope} {s.project}"
            if s.service is not None:
                where += f"/{s.service.name}"
            self.stdout.write(f"{s.key}\t{where}\tupdated {s.updated_at:%Y-%m-%d %H:%M}")

    def _rotate(self) -> None:
        try:
            result = encrypted_fields_rotate()
        except RotationFailed as exc:
            raise CommandError(str(exc)) from exc
        detail = ", ".join(f"{label}: {n}" for label, n in result.counts.items())
        self.stdout.write(f"re-encrypted {result.total} value(s) with the current key ({detail})")
