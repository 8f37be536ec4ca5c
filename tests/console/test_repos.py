"""Console pages for git repositories: add (with a deploy key), Sync now, history, permissions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from k8x_core.models import GitRepository, Membership, Project, Role, Service, SyncRecord
from tests.k8x_core.catalog.conftest import GitServer, git_server, service_write  # noqa: F401 - git_server is a fixture

pytestmark = pytest.mark.django_db

PASSWORD = "repos-test-pw-1"


@pytest.fixture
def project() -> Project:
    return Project.objects.create(slug="gitdeploy-console", name="Git console")


def _client(project: Project, role: Role | None, name: str) -> Client:
    user = User.objects.create_user(username=name, password=PASSWORD)
    if role is not None:
        Membership.objects.create(project=project, user=user, role=role)
    client = Client()
    assert client.login(username=name, password=PASSWORD)
    return client


def test_add_sync_and_see_history(project: Project, git_server: GitServer, tmp_path: Path) -> None:  # noqa: F811
    work = git_server.create("services", tmp_path / "work")
    service_write(work.path, "orders", manifest={"trigger_events": ["com.acme.order.created"]})
    service_write(work.path, "billing")
    commit = work.commit_push("two services")
    admin = _client(project, Role.ADMIN, "gd-admin")

    page = admin.get(f"/projects/{project.slug}/repos/")
    assert page.status_code == 200 and b"Add a repository" in page.content

    response = admin.post(
        f"/projects/{project.slug}/repos/",
        {"name": "services", "url": git_server.url("services"), "branch": "main", "path": "", "auth": "none"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    repo = GitRepository.objects.get(project=project, name="services")

    # Sync now: validation includes the server-side dry run only when a cluster is configured;
    # the console always asks for it, so use the command-line switch's equivalent here.
    from django.test import override_settings

    with override_settings(K8X_GIT_VALIDATE_ON_CLUSTER=False):
        response = admin.post(f"/projects/{project.slug}/repos/services/sync/", follow=True)
    assert response.status_code == 200
    record = SyncRecord.objects.get(repository=repo)
    assert record.status == SyncRecord.Status.APPLIED, record.errors
    assert record.requested_by is not None and record.requested_by.get_username() == "gd-admin"
    body = response.content.decode()
    assert f"Synced {commit[:12]}: 2 created" in body
    assert "create" in body and "orders" in body

    detail = admin.get(f"/projects/{project.slug}/repos/services/").content.decode()
    assert commit in detail  # deployed commit
    assert "2 created, 0 updated, 0 deactivated" in detail
    assert "gd-admin" in detail

    service_page = admin.get(f"/projects/{project.slug}/services/orders/")
    if service_page.status_code == 200 and b"source-commit" in service_page.content:
        assert commit.encode() in service_page.content


def test_a_failed_sync_lists_every_problem(project: Project, git_server: GitServer, tmp_path: Path) -> None:  # noqa: F811
    work = git_server.create("broken", tmp_path / "work")
    service_write(work.path, "bad", manifest={"timeout": "soon", "colour": "red"})
    work.commit_push("broken")
    GitRepository.objects.create(project=project, name="broken", url=git_server.url("broken"))
    admin = _client(project, Role.ADMIN, "gd-admin")
    from django.test import override_settings

    with override_settings(K8X_GIT_VALIDATE_ON_CLUSTER=False):
        response = admin.post(f"/projects/{project.slug}/repos/broken/sync/", follow=True)
    body = response.content.decode()
    assert "Sync failed with 2 problem(s); nothing was applied." in body
    assert "bad/manifest.json" in body
    assert "must be an integer, not a string" in body
    assert "unknown field" in body
    assert not Service.objects.filter(project=project).exists()


def test_ssh_repository_shows_its_public_key_and_regenerates_it(project: Project) -> None:
    admin = _client(project, Role.ADMIN, "gd-admin")
    response = admin.post(
        f"/projects/{project.slug}/repos/",
        {"name": "keyed", "url": "git@git.example.com:acme/services.git", "branch": "main", "auth": "ssh"},
    )
    assert response.status_code == 302
    repo = GitRepository.objects.get(project=project, name="keyed")
    page = admin.get(f"/projects/{project.slug}/repos/keyed/").content.decode()
    assert repo.deploy_public_key in page
    assert "PRIVATE KEY" not in page
    assert repo.deploy_private_key_encrypted not in page

    old = repo.deploy_public_key
    admin.post(f"/projects/{project.slug}/repos/keyed/key/")
    repo.refresh_from_db()
    assert repo.deploy_public_key != old
    assert re.match(r"^ssh-ed25519 \S+ k8x-deploy-gitdeploy-console-keyed$", repo.deploy_public_key)


def test_bad_settings_are_shown_on_the_field(project: Project) -> None:
    admin = _client(project, Role.ADMIN, "gd-admin")
    response = admin.post(
        f"/projects/{project.slug}/repos/",
        {"name": "evil", "url": "ext::sh -c touch% /tmp/x", "branch": "main", "auth": "none"},
    )
    assert response.status_code == 200
    assert "must be an ssh://" in response.content.decode()
    assert not GitRepository.objects.filter(project=project).exists()


def test_token_is_never_shown(project: Project) -> None:
    admin = _client(project, Role.ADMIN, "gd-admin")
    admin.post(
        f"/projects/{project.slug}/repos/",
        {
            "name": "tok",
            "url": "https://git.example.com/acme/s.git",
            "branch": "main",
            "auth": "https_token",
            "token": "tok-SECRET-123",
        },
    )
    repo = GitRepository.objects.get(project=project, name="tok")
    page = admin.get(f"/projects/{project.slug}/repos/tok/").content.decode()
    assert "tok-SECRET-123" not in page and repo.https_token_encrypted not in page
    admin.post(f"/projects/{project.slug}/repos/tok/token/", {"token": "tok-NEW-456"})
    repo.refresh_from_db()
    from k8x_core.crypto import secret_decrypt

    assert secret_decrypt(ciphertext=repo.https_token_encrypted) == "tok-NEW-456"


def test_permissions(project: Project) -> None:
    repo = GitRepository.objects.create(project=project, name="r", url="https://git.example.com/a.git")
    user = _client(project, Role.USER, "gd-user")
    outsider = _client(project, None, "gd-outsider")
    assert user.get(f"/projects/{project.slug}/repos/r/").status_code == 200
    assert user.post(f"/projects/{project.slug}/repos/r/sync/").status_code == 403
    assert user.post(f"/projects/{project.slug}/repos/r/delete/").status_code == 403
    assert (
        user.post(f"/projects/{project.slug}/repos/", {"name": "x", "url": "https://a.example/x.git"}).status_code
        == 403
    )
    assert outsider.get(f"/projects/{project.slug}/repos/").status_code == 404
    assert outsider.get(f"/projects/{project.slug}/repos/r/").status_code == 404
    assert not SyncRecord.objects.filter(repository=repo).exists()
    assert GitRepository.objects.filter(pk=repo.pk).exists()
