"""The audit log of git deployments: k8x_apply and git sync record each service they change."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from k8x_core.catalog.git import repo_create, repo_sync
from k8x_core.models import AuditEntry, Project
from tests.k8x_core.catalog.conftest import GitServer, service_write

pytestmark = pytest.mark.django_db


def _rows(project: Project) -> list[tuple[str, str, str, str, str]]:
    return list(
        AuditEntry.objects.filter(project=project)
        .order_by("pk")
        .values_list("actor_kind", "actor_name", "action", "kind", "object_name")
    )


def _apply(root: Path, project: str) -> None:
    call_command("k8x_apply", str(root), "--project", project, "--no-cluster-validation", stdout=StringIO())


def test_k8x_apply_records_create_update_and_deactivate(tmp_path: Path) -> None:
    service_write(tmp_path, "alpha", manifest={"trigger_events": ["com.acme.a"]}, configs={"MODE": "fast"})
    service_write(tmp_path, "beta")
    _apply(tmp_path, "audit-apply")
    project = Project.objects.get(slug="audit-apply")
    assert _rows(project) == [
        ("apply", "k8x_apply", "create", "service", "alpha"),
        ("apply", "k8x_apply", "create", "service", "beta"),
    ]
    alpha = AuditEntry.objects.get(project=project, object_name="alpha")
    assert alpha.changes["trigger_events"] == {"old": None, "new": ["com.acme.a"]}
    assert alpha.changes["configs"] == {"old": None, "new": {"MODE": "fast"}}

    service_write(
        tmp_path, "alpha", manifest={"trigger_events": ["com.acme.b"], "retries": 3}, configs={"MODE": "fast"}
    )
    shutil.rmtree(tmp_path / "beta")
    _apply(tmp_path, "audit-apply")
    _apply(tmp_path, "audit-apply")  # nothing changed: nothing recorded
    assert _rows(project)[2:] == [
        ("apply", "k8x_apply", "update", "service", "alpha"),
        ("apply", "k8x_apply", "update", "service", "beta"),
    ]
    update = AuditEntry.objects.filter(project=project, object_name="alpha").latest("pk")
    assert update.changes == {
        "retries": {"old": 0, "new": 3},
        "trigger_events": {"old": ["com.acme.a"], "new": ["com.acme.b"]},
    }
    assert AuditEntry.objects.filter(project=project, object_name="beta").latest("pk").changes == {
        "active": {"old": True, "new": False}
    }


def test_git_sync_records_the_repository_and_who_asked(git_server: GitServer, tmp_path: Path) -> None:
    project = Project.objects.create(slug="audit-git")
    work = git_server.create("services", tmp_path / "work")
    service_write(work.path, "orders", manifest={"trigger_events": ["com.acme.order.created"]})
    work.commit_push("one service")
    alice = User.objects.create_user(username="alice")
    repo = repo_create(project=project, name="services", url=git_server.url("services"), actor=alice)

    record = repo_sync(repo=repo, requested_by=alice, validate_on_cluster=False)
    assert record.status == "applied", record.errors

    service_write(work.path, "orders", manifest={"trigger_events": ["com.acme.order.created"], "timeout": 60})
    work.commit_push("a timeout")
    repo_sync(repo=repo, validate_on_cluster=False)  # periodic: nobody asked
    assert _rows(project) == [
        ("user", "alice", "create", "git_repository", "services"),
        ("git", "services (sync requested by alice)", "create", "service", "orders"),
        ("git", "services", "update", "service", "orders"),
    ]
    entry = AuditEntry.objects.filter(project=project, kind="service").latest("pk")
    assert entry.actor_id == str(repo.pk)
    assert entry.changes == {"timeout_seconds": {"old": None, "new": 60}}
