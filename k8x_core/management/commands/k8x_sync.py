"""Sync projects' git repositories: fetch, validate everything, apply all or nothing."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from k8x_core.catalog import servicedirs
from k8x_core.catalog.git import repo_sync
from k8x_core.models import GitRepository, SyncRecord


class Command(BaseCommand):
    help = "Sync git repositories (all, one project's, or one). Exits non-zero if any sync failed."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--project", help="project slug")
        parser.add_argument("--repo", help="repository name (within --project)")
        parser.add_argument(
            "--no-cluster-validation",
            action="store_true",
            help="skip the server-side dry run of each deployment.yaml",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        repos = GitRepository.objects.select_related("project").order_by("project__slug", "name")
        if options.get("repo") and not options.get("project"):
            raise CommandError("--repo needs --project")
        if options.get("project"):
            repos = repos.filter(project__slug=options["project"])
        if options.get("repo"):
            repos = repos.filter(name=options["repo"])
        if not repos.exists():
            raise CommandError("no matching repository")
        failed = 0
        for repo in repos:
            record = repo_sync(repo=repo, validate_on_cluster=not options["no_cluster_validation"])
            label = f"{repo.project.slug}/{repo.name}"
            if record.status == SyncRecord.Status.APPLIED:
                counts = {"create": 0, "update": 0, "deactivate": 0, "unchanged": 0}
                for change in record.changes:
                    counts[change["action"]] = counts.get(change["action"], 0) + 1
                self.stdout.write(
                    f"{label}: applied {record.commit[:12]}: {counts['create']} created, {counts['update']} updated, "
                    f"{counts['deactivate']} deactivated, {counts['unchanged']} unchanged"
                )
                for change in record.changes:
                    if change["action"] != "unchanged":
                        fields = ", ".join(change["diff"]) if change["action"] == "update" else ""
                        self.stdout.write(f"  {change['action']} {change['service']}{': ' + fields if fields else ''}")
            else:
                failed += 1
                self.stderr.write(f"{label}: FAILED at {record.commit[:12] or '(no commit)'}; nothing applied")
                for err in record.errors:
                    self.stderr.write(f"  error: {servicedirs.SpecError(**err)}")
        if failed:
            raise CommandError(f"{failed} repository sync(s) failed")
