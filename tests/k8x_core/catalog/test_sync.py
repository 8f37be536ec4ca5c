"""Git sync against a real git server (git daemon on loopback) and PostgreSQL."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from k8x_core.catalog.git import repo_create, repo_sync
from k8x_core.catalog.servicedirs import service_sync_history
from k8x_core.models import Config, Origin, Project, Scope, Service, SyncRecord, Trigger
from tests.k8x_core.catalog.conftest import GitServer, WorkRepo, service_write

pytestmark = pytest.mark.django_db


@pytest.fixture
def project() -> Project:
    return Project.objects.create(slug="gitdeploy-demo")


@pytest.fixture
def work(git_server: GitServer, tmp_path: Path) -> WorkRepo:
    return git_server.create("services", tmp_path / "work")


def _two_services(work: WorkRepo) -> str:
    service_write(
        work.path,
        "orders",
        manifest={"trigger_events": ["com.acme.order.created"], "tags": ["shop"], "timeout": 120},
        configs={"COLOR": "blue"},
        parameters={"type": "object", "properties": {"id": {"type": "string"}}},
    )
    service_write(work.path, "billing", manifest={"trigger_events": ["com.acme.invoice.*"], "retries": 1})
    (work.path / "README.md").write_text("services\n")
    return work.commit_push("two services")


def _state(project: Project) -> dict[str, object]:
    return {
        "services": sorted(
            Service.objects.filter(project=project).values_list("name", "active", "source_commit", "job_template")
        ),
        "triggers": sorted(Trigger.objects.filter(service__project=project).values_list("service__name", "event_type")),
        "configs": sorted(Config.objects.filter(project=project).values_list("key", "value")),
    }


def test_two_services_sync_then_change_and_removal(project: Project, git_server: GitServer, work: WorkRepo) -> None:
    commit1 = _two_services(work)
    repo = repo_create(project=project, name="services", url=git_server.url("services"))

    record = repo_sync(repo=repo, validate_on_cluster=False)

    assert record.status == SyncRecord.Status.APPLIED, record.errors
    assert record.commit == commit1
    assert sorted((c["action"], c["service"]) for c in record.changes) == [
        ("create", "billing"),
        ("create", "orders"),
    ]
    orders = Service.objects.get(project=project, name="orders")
    assert (orders.origin, orders.source_repo_id, orders.source_commit) == (Origin.GIT, repo.pk, commit1)
    assert orders.timeout_seconds == 120 and orders.tags == ["shop"]
    assert "localhost:5000/k8x/busybox:1" in orders.job_template
    assert orders.parameters_schema["properties"]["id"] == {"type": "string"}
    assert list(orders.triggers.values_list("event_type", "origin")) == [("com.acme.order.created", Origin.GIT)]
    assert list(Config.objects.filter(scope=Scope.SERVICE, service=orders).values_list("key", "value", "origin")) == [
        ("COLOR", "blue", Origin.GIT)
    ]
    repo.refresh_from_db()
    assert repo.last_commit == commit1 and repo.last_synced_at is not None

    # People add a trigger and a config by hand; the next sync keeps them.
    Trigger.objects.create(service=orders, event_type="com.acme.manual", origin=Origin.MANUAL)
    Config.objects.create(scope=Scope.SERVICE, project=project, service=orders, key="OWNER", value="ops")

    # Second commit: a changed trigger, billing removed.
    service_write(work.path, "orders", manifest={"trigger_events": ["com.acme.order.paid"], "tags": ["shop"]})
    (work.path / "orders" / "configs.json").unlink()
    shutil.rmtree(work.path / "billing")
    commit2 = work.commit_push("orders on paid; billing retired")

    record2 = repo_sync(repo=repo, validate_on_cluster=False)

    assert record2.status == SyncRecord.Status.APPLIED, record2.errors
    assert record2.commit == commit2
    changes = {c["service"]: c for c in record2.changes}
    assert changes["billing"]["action"] == "deactivate"
    assert changes["orders"]["action"] == "update"
    assert changes["orders"]["diff"]["trigger_events"] == {
        "old": ["com.acme.order.created"],
        "new": ["com.acme.order.paid"],
    }
    assert changes["orders"]["diff"]["timeout_seconds"] == {"old": 120, "new": None}
    assert changes["orders"]["diff"]["configs"] == {"old": {"COLOR": "blue"}, "new": {}}
    orders.refresh_from_db()
    assert orders.source_commit == commit2
    assert sorted(orders.triggers.values_list("event_type", "origin")) == [
        ("com.acme.manual", Origin.MANUAL),
        ("com.acme.order.paid", Origin.GIT),
    ]
    assert list(Config.objects.filter(service=orders).values_list("key", flat=True)) == ["OWNER"]
    billing = Service.objects.get(project=project, name="billing")
    assert billing.active is False
    assert billing.source_commit == commit1  # what it last came from
    repo.refresh_from_db()
    assert repo.last_commit == commit2

    history = service_sync_history(service=orders)
    assert [r.commit for r in history] == [commit2, commit1]

    # A third sync of the same commit changes nothing and says so.
    record3 = repo_sync(repo=repo, validate_on_cluster=False)
    assert [c["action"] for c in record3.changes] == ["unchanged"]
    assert [r.pk for r in service_sync_history(service=orders)] == [record2.pk, record.pk]


def test_a_broken_commit_changes_nothing_and_reports_each_problem(
    project: Project, git_server: GitServer, work: WorkRepo
) -> None:
    commit1 = _two_services(work)
    repo = repo_create(project=project, name="services", url=git_server.url("services"))
    assert repo_sync(repo=repo, validate_on_cluster=False).status == SyncRecord.Status.APPLIED
    before = _state(project)

    # A good change next to four broken things: none of it may land.
    service_write(work.path, "orders", manifest={"trigger_events": ["com.acme.changed"]})
    service_write(work.path, "badjson", raw_manifest='{"name": "badjson",')
    service_write(work.path, "badtype", manifest={"timeout": "soon", "colour": "red"})
    service_write(work.path, "badjob", deployment="apiVersion: apps/v1\nkind: Deployment\nspec: {}\n")
    service_write(work.path, "badcron", manifest={"schedule": "61 * * * *"})
    commit2 = work.commit_push("broken")

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 repository sync"):
        call_command(
            "k8x_sync",
            "--project",
            project.slug,
            "--repo",
            "services",
            "--no-cluster-validation",
            stdout=out,
            stderr=err,
        )

    assert _state(project) == before
    record = SyncRecord.objects.filter(repository=repo).first()
    assert record is not None
    assert (record.status, record.commit) == (SyncRecord.Status.FAILED, commit2)
    problems = {(e["file"], e["field"]) for e in record.errors}
    assert {
        ("badjson/manifest.json", ""),
        ("badtype/manifest.json", "timeout"),
        ("badtype/manifest.json", "colour"),
        ("badjob/deployment.yaml", "kind"),
        ("badcron/manifest.json", "schedule"),
    } <= problems
    printed = err.getvalue()
    for line in (
        "badjson/manifest.json: invalid JSON",
        "badtype/manifest.json: timeout: must be an integer, not a string",
        "badtype/manifest.json: colour: unknown field",
        "badjob/deployment.yaml: kind:",
        "badcron/manifest.json: schedule: '61 * * * *' is not a valid cron expression",
    ):
        assert line in printed
    repo.refresh_from_db()
    assert repo.last_commit == commit1


def test_a_service_owned_by_another_repository_is_a_conflict(
    project: Project, git_server: GitServer, work: WorkRepo, tmp_path: Path
) -> None:
    _two_services(work)
    first = repo_create(project=project, name="first", url=git_server.url("services"))
    assert repo_sync(repo=first, validate_on_cluster=False).status == SyncRecord.Status.APPLIED
    other = git_server.create("other", tmp_path / "other")
    service_write(other.path, "orders", manifest={"description": "hijack"})
    other.commit_push("same name")
    second = repo_create(project=project, name="second", url=git_server.url("other"))

    record = repo_sync(repo=second, validate_on_cluster=False)

    assert record.status == SyncRecord.Status.FAILED
    assert record.errors[0]["field"] == "name"
    assert "managed by repository first" in record.errors[0]["message"]
    assert Service.objects.get(project=project, name="orders").description == "the orders service"


def test_a_console_service_is_adopted(project: Project, git_server: GitServer, work: WorkRepo) -> None:
    manual = Service.objects.create(project=project, name="orders", image="busybox", command=["true"])
    _two_services(work)
    repo = repo_create(project=project, name="services", url=git_server.url("services"))
    record = repo_sync(repo=repo, validate_on_cluster=False)
    assert record.status == SyncRecord.Status.APPLIED
    change = next(c for c in record.changes if c["service"] == "orders")
    assert change["diff"]["origin"] == {"old": "manual", "new": "git"}
    manual.refresh_from_db()
    assert (manual.origin, manual.image, manual.source_repo_id) == (Origin.GIT, "", repo.pk)


def test_fetch_failure_is_recorded(project: Project, git_server: GitServer) -> None:
    repo = repo_create(project=project, name="missing", url=git_server.url("nope"))
    record = repo_sync(repo=repo, validate_on_cluster=False)
    assert record.status == SyncRecord.Status.FAILED
    assert "git fetch of main failed" in record.errors[0]["message"]
    repo.refresh_from_db()
    assert repo.last_commit == "" and repo.last_synced_at is not None


def test_repository_path_selects_a_subdirectory(project: Project, git_server: GitServer, work: WorkRepo) -> None:
    service_write(work.path / "deploy" / "k8x", "inner")
    service_write(work.path, "outer")
    work.commit_push("nested")
    repo = repo_create(project=project, name="nested", url=git_server.url("services"), path="deploy/k8x/")
    assert repo.path == "deploy/k8x"
    record = repo_sync(repo=repo, validate_on_cluster=False)
    assert record.status == SyncRecord.Status.APPLIED, record.errors
    assert list(Service.objects.filter(project=project).values_list("name", flat=True)) == ["inner"]


def test_a_symlinked_path_cannot_lead_outside_the_checkout(
    project: Project, git_server: GitServer, work: WorkRepo, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    service_write(outside, "stolen")
    (work.path / "deploy").symlink_to(outside)
    work.commit_push("symlinked path")
    repo = repo_create(project=project, name="sneaky", url=git_server.url("services"), path="deploy")
    record = repo_sync(repo=repo, validate_on_cluster=False)
    assert record.status == SyncRecord.Status.FAILED
    assert record.errors[0]["field"] == "path"
    assert not Service.objects.filter(project=project).exists()


def test_k8x_sync_command_prints_what_changed(project: Project, git_server: GitServer, work: WorkRepo) -> None:
    commit = _two_services(work)
    repo_create(project=project, name="services", url=git_server.url("services"))
    out = StringIO()
    call_command("k8x_sync", "--project", project.slug, "--no-cluster-validation", stdout=out)
    text = out.getvalue()
    assert f"{project.slug}/services: applied {commit[:12]}: 2 created, 0 updated, 0 deactivated, 0 unchanged" in text
    assert "  create billing" in text and "  create orders" in text
    with pytest.raises(CommandError, match="no matching repository"):
        call_command("k8x_sync", "--project", "no-such-project")
