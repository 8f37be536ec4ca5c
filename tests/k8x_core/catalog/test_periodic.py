"""repos_sync_due: the scheduler's periodic git sync."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from k8x_core.catalog.git import repo_create, repos_sync_due
from k8x_core.models import GitRepository, Project, Service, SyncRecord
from tests.k8x_core.catalog.conftest import GitServer, service_write

pytestmark = pytest.mark.django_db


def test_periodic_sync_runs_only_when_enabled_and_due(git_server: GitServer, tmp_path: Path, settings: Any) -> None:
    settings.K8X_GIT_VALIDATE_ON_CLUSTER = False
    project = Project.objects.create(slug="gitdeploy-periodic")
    work = git_server.create("services", tmp_path / "work")
    service_write(work.path, "ticker")
    commit = work.commit_push("one")
    repo = repo_create(project=project, name="services", url=git_server.url("services"))
    now = timezone.now()

    settings.K8X_GIT_SYNC_INTERVAL_SECONDS = 0
    assert repos_sync_due(now=now) == []
    assert not Service.objects.filter(project=project).exists()

    settings.K8X_GIT_SYNC_INTERVAL_SECONDS = 300
    [record] = repos_sync_due(now=now)
    assert (record.status, record.commit, record.requested_by) == (SyncRecord.Status.APPLIED, commit, None)
    assert Service.objects.filter(project=project, name="ticker").exists()

    # Not due again within the interval ...
    assert repos_sync_due(now=now + timedelta(seconds=299)) == []
    # ... and due after it.
    records = repos_sync_due(now=timezone.now() + timedelta(seconds=301))
    assert [r.repository_id for r in records] == [repo.pk]
    assert SyncRecord.objects.filter(repository=repo).count() == 2


def test_a_claimed_repository_is_skipped(git_server: GitServer, settings: Any) -> None:
    """Two schedulers: the conditional UPDATE lets only one of them sync a repository."""
    settings.K8X_GIT_SYNC_INTERVAL_SECONDS = 60
    project = Project.objects.create(slug="gitdeploy-claim")
    repo = repo_create(project=project, name="r", url=git_server.url("none"))
    now = timezone.now()
    # Another scheduler claimed it a moment ago.
    GitRepository.objects.filter(pk=repo.pk).update(last_synced_at=now)
    assert repos_sync_due(now=now) == []
    assert not SyncRecord.objects.exists()


def test_limit_syncs_the_longest_waiting_first(git_server: GitServer, settings: Any) -> None:
    settings.K8X_GIT_SYNC_INTERVAL_SECONDS = 60
    project = Project.objects.create(slug="gitdeploy-limit")
    old = repo_create(project=project, name="old", url=git_server.url("none"))
    new = repo_create(project=project, name="new", url=git_server.url("none"))
    never = repo_create(project=project, name="never", url=git_server.url("none"))
    now = timezone.now()
    GitRepository.objects.filter(pk=old.pk).update(last_synced_at=now - timedelta(hours=2))
    GitRepository.objects.filter(pk=new.pk).update(last_synced_at=now - timedelta(hours=1))
    assert [r.repository_id for r in repos_sync_due(now=now, limit=1)] == [never.pk]
    assert [r.repository_id for r in repos_sync_due(now=now, limit=1)] == [old.pk]
    assert [r.repository_id for r in repos_sync_due(now=now, limit=5)] == [new.pk]
