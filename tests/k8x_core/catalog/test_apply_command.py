"""`manage.py k8x_apply DIR --project P [--dry-run]`."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from k8x_core.models import Origin, Project, Service, SyncRecord, Trigger
from tests.k8x_core.catalog.conftest import GitServer, service_write

pytestmark = pytest.mark.django_db


def _apply(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("k8x_apply", *args, "--no-cluster-validation", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    service_write(tmp_path, "alpha", manifest={"trigger_events": ["com.acme.a"]})
    service_write(tmp_path, "beta", configs={"MODE": "fast"})

    out, _ = _apply(str(tmp_path), "--project", "gitdeploy-apply", "--dry-run")

    assert "+ create project gitdeploy-apply" in out
    assert "+ create alpha (alpha/)" in out
    assert "+ create beta (beta/)" in out
    assert 'trigger_events: null -> ["com.acme.a"]' in out
    assert "timeout_seconds" not in out
    assert "2 to create, 0 to update, 0 to deactivate, 0 unchanged." in out
    assert "Dry run: nothing changed." in out
    assert not Project.objects.filter(slug="gitdeploy-apply").exists()
    assert not Service.objects.exists() and not SyncRecord.objects.exists()


def test_apply_creates_the_project_then_updates_and_deactivates(tmp_path: Path) -> None:
    service_write(tmp_path, "alpha", manifest={"trigger_events": ["com.acme.a"]})
    service_write(tmp_path, "beta")

    out, _ = _apply(str(tmp_path), "--project", "gitdeploy-apply")

    assert "Created project gitdeploy-apply." in out
    project = Project.objects.get(slug="gitdeploy-apply")
    assert sorted(Service.objects.filter(project=project).values_list("name", "origin", "source_repo")) == [
        ("alpha", Origin.GIT, None),
        ("beta", Origin.GIT, None),
    ]
    record = SyncRecord.objects.get(project=project)
    assert (record.status, record.source, record.commit) == (SyncRecord.Status.APPLIED, str(tmp_path), "")

    service_write(tmp_path, "alpha", manifest={"trigger_events": ["com.acme.b"], "retries": 3})
    shutil.rmtree(tmp_path / "beta")
    before = Service.objects.get(project=project, name="alpha").updated_at

    out, _ = _apply(str(tmp_path), "--project", "gitdeploy-apply", "--dry-run")
    assert "~ update alpha (alpha/)" in out
    assert "retries: 0 -> 3" in out
    assert '"com.acme.a"' in out and '"com.acme.b"' in out
    assert "- deactivate beta" in out
    assert Service.objects.get(project=project, name="alpha").updated_at == before
    assert Service.objects.get(project=project, name="beta").active is True
    assert SyncRecord.objects.filter(project=project).count() == 1

    _apply(str(tmp_path), "--project", "gitdeploy-apply")
    alpha = Service.objects.get(project=project, name="alpha")
    assert alpha.retries == 3
    assert list(Trigger.objects.filter(service=alpha).values_list("event_type", flat=True)) == ["com.acme.b"]
    assert Service.objects.get(project=project, name="beta").active is False


def test_apply_refuses_everything_when_one_directory_is_broken(tmp_path: Path) -> None:
    project = Project.objects.create(slug="gitdeploy-apply")
    service_write(tmp_path, "good")
    service_write(tmp_path, "bad", manifest={"concurrency": 0, "trigger_events": "com.acme.x"})
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 problem"):
        call_command(
            "k8x_apply", str(tmp_path), "--project", project.slug, "--no-cluster-validation", stdout=out, stderr=err
        )
    assert "bad/manifest.json: concurrency: 0 is less than the minimum of 1" in err.getvalue()
    assert "bad/manifest.json: trigger_events: must be a list, not a string" in err.getvalue()
    assert not Service.objects.filter(project=project).exists()
    record = SyncRecord.objects.get(project=project)
    assert record.status == SyncRecord.Status.FAILED and len(record.errors) == 2


def test_apply_records_the_commit_of_a_git_work_tree(git_server: GitServer, tmp_path: Path) -> None:
    work = git_server.create("ci", tmp_path / "checkout")
    service_write(work.path, "from-ci")
    commit = work.commit_push("ci")
    _apply(str(work.path), "--project", "gitdeploy-ci")
    assert Service.objects.get(name="from-ci").source_commit == commit
    assert SyncRecord.objects.get(project__slug="gitdeploy-ci").commit == commit


def test_one_service_directory_is_applied_alone_and_leaves_the_others(tmp_path: Path) -> None:
    """`k8x_apply examples/python-hello`: the directory given is itself the service directory,
    and applying another one later does not deactivate the first."""
    alpha = service_write(tmp_path, "alpha", manifest={"trigger_events": ["com.acme.a"]})
    beta = service_write(tmp_path, "beta")

    out, _ = _apply(str(alpha), "--project", "gitdeploy-single")
    assert "+ create alpha (alpha/)" in out
    assert "beta" not in out
    out, _ = _apply(str(beta), "--project", "gitdeploy-single")
    assert "+ create beta (beta/)" in out and "deactivate" not in out.replace("0 to deactivate", "")

    project = Project.objects.get(slug="gitdeploy-single")
    assert sorted(Service.objects.filter(project=project).values_list("name", "active")) == [
        ("alpha", True),
        ("beta", True),
    ]
    assert list(Trigger.objects.filter(service__name="alpha").values_list("event_type", flat=True)) == ["com.acme.a"]
