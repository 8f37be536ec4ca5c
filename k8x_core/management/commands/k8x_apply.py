"""Apply a local directory of service directories to a project (CI pipelines, GitOps).

Same pipeline as a git sync: everything is validated first, then applied in
one transaction, or nothing is. ``--dry-run`` prints the plan and changes
nothing: no project, no services, no SyncRecord.
"""

from __future__ import annotations

import re
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from k8x_core.catalog import servicedirs
from k8x_core.catalog.git import worktree_commit
from k8x_core.models import DNS_LABEL_REGEX, Project, SyncRecord
from k8x_core.projects import project_ensure


class Command(BaseCommand):
    help = "Apply the service directories in DIR to project P (creating it if missing); --dry-run prints the plan."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "dir", help="directory holding one service directory per service, or one service directory itself"
        )
        parser.add_argument("--project", required=True, help="project slug (created if missing)")
        parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
        parser.add_argument(
            "--no-cluster-validation",
            action="store_true",
            help="skip the server-side dry run of each deployment.yaml (when the cluster cannot be reached)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["dir"]).resolve()
        slug: str = options["project"]
        if not re.match(DNS_LABEL_REGEX, slug) or len(slug) > 40:
            raise CommandError(f"--project {slug!r} is not a valid project slug (a DNS label of up to 40 characters)")
        if not root.is_dir():
            raise CommandError(f"{options['dir']} is not a directory")
        project = Project.objects.filter(slug=slug).first()
        loaded = servicedirs.servicedir_load(
            root=root,
            project=project,
            validate_on_cluster=not options["no_cluster_validation"],
            allow_single=True,
        )
        commit = worktree_commit(path=root)
        if loaded.errors:
            if project is not None and not options["dry_run"]:
                servicedirs.sync_failed(
                    project=project,
                    repository=None,
                    source=str(root),
                    commit=commit,
                    requested_by=None,
                    errors=loaded.errors,
                )
            for err in loaded.errors:
                self.stderr.write(f"error: {err}")
            raise CommandError(f"{len(loaded.errors)} problem(s) in {root}; nothing applied")

        # One service directory applied alone is that service only: the others stay active.
        single = (root / servicedirs.MANIFEST).is_file()
        plan = servicedirs.plan_build(
            project=project, project_slug=slug, specs=loaded.specs, repository=None, deactivate_missing=not single
        )
        self.stdout.write(plan.render())
        if plan.errors:
            for err in plan.errors:
                self.stderr.write(f"error: {err}")
            raise CommandError(f"{len(plan.errors)} conflict(s); nothing applied")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing changed.")
            return
        if project is None:
            project, _ = project_ensure(slug=slug)
            plan.project = project
            self.stdout.write(f"Created project {slug}.")
        record = servicedirs.plan_apply(plan=plan, source=str(root), commit=commit)
        if record.status != SyncRecord.Status.APPLIED:
            for err in record.errors:
                self.stderr.write(f"error: {servicedirs.SpecError(**err)}")
            raise CommandError("nothing applied")
        self.stdout.write(f"Applied (sync record {record.pk}{', commit ' + commit[:12] if commit else ''}).")
