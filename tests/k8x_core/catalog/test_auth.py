"""Fetching over SSH with a generated deploy key and over HTTP with a token."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from k8x_core.catalog import git as gitrepo
from k8x_core.catalog.git import RepoInvalid, repo_create, repo_key_regenerate, repo_sync, repo_token_set
from k8x_core.crypto import secret_decrypt
from k8x_core.models import GitRepository, Project, Service, SyncRecord
from tests.k8x_core.catalog.conftest import HttpGitServer, SshGitServer, service_write

pytestmark = pytest.mark.django_db


@pytest.fixture
def project() -> Project:
    return Project.objects.create(slug="gitdeploy-auth")


def test_deploy_key_is_ed25519_openssh_and_encrypted_at_rest(project: Project, tmp_path: Path) -> None:
    repo = repo_create(project=project, name="keyed", url="git@git.example.com:acme/services.git", auth="ssh")
    assert repo.deploy_public_key.startswith("ssh-ed25519 ")
    assert repo.deploy_public_key.endswith(" k8x-deploy-gitdeploy-auth-keyed")
    assert "PRIVATE KEY" not in repo.deploy_private_key_encrypted
    private = secret_decrypt(ciphertext=repo.deploy_private_key_encrypted)
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # ssh-keygen agrees the private key belongs to the public key shown.
    key_file = tmp_path / "k"
    key_file.write_text(private)
    key_file.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[:2] == repo.deploy_public_key.split()[:2]

    old = repo.deploy_public_key
    new = repo_key_regenerate(repo=repo)
    repo.refresh_from_db()
    assert new == repo.deploy_public_key != old


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"url": "ext::sh -c touch% /tmp/pwned"}, "url"),
        ({"url": "file:///etc"}, "url"),
        ({"url": "/srv/git/x.git"}, "url"),
        ({"url": "https://user:pw@example.com/x.git"}, "url"),
        ({"url": "-oProxyCommand=x"}, "url"),
        ({"url": "https://example.com/x.git", "auth": "ssh"}, "url"),
        ({"branch": "--upload-pack=x"}, "branch"),
        ({"branch": "a..b"}, "branch"),
        ({"path": "../../etc"}, "path"),
        ({"name": "Not A Slug"}, "name"),
        ({"url": "https://example.com/x.git", "auth": "https_token"}, "token"),
    ],
)
def test_repository_settings_are_checked(project: Project, kwargs: dict[str, str], field: str) -> None:
    args: dict[str, Any] = {"name": "r", "url": "https://example.com/x.git", **kwargs}
    with pytest.raises(RepoInvalid) as exc:
        repo_create(project=project, **args)
    assert exc.value.field == field
    assert not GitRepository.objects.filter(project=project).exists()


def test_sync_over_ssh_with_the_generated_deploy_key(
    project: Project, ssh_git_server: SshGitServer, tmp_path: Path
) -> None:
    work = ssh_git_server.create("services", tmp_path / "work")
    service_write(work.path, "over-ssh", manifest={"trigger_events": ["com.acme.ssh"]})
    commit = work.commit_push("ssh")
    repo = repo_create(project=project, name="ssh", url=ssh_git_server.url("services"), auth="ssh")

    # Before the key is on the server, the sync fails cleanly.
    refused = repo_sync(repo=repo, validate_on_cluster=False)
    assert refused.status == SyncRecord.Status.FAILED
    assert "Permission denied" in refused.errors[0]["message"]

    ssh_git_server.authorize(repo.deploy_public_key)
    record = repo_sync(repo=repo, validate_on_cluster=False)
    assert record.status == SyncRecord.Status.APPLIED, record.errors
    assert record.commit == commit
    assert Service.objects.get(project=project, name="over-ssh").source_commit == commit

    # A regenerated key is a different key: the old authorisation no longer lets it in.
    repo_key_regenerate(repo=repo)
    assert repo_sync(repo=repo, validate_on_cluster=False).status == SyncRecord.Status.FAILED


def test_sync_over_http_with_a_token(project: Project, http_git_server: HttpGitServer, tmp_path: Path) -> None:
    work = http_git_server.create("services", tmp_path / "work")
    service_write(work.path, "over-http")
    commit = work.commit_push("http")
    repo = repo_create(
        project=project,
        name="http",
        url=http_git_server.url("services"),
        auth="https_token",
        token="wrong-token",
    )
    refused = repo_sync(repo=repo, validate_on_cluster=False)
    assert refused.status == SyncRecord.Status.FAILED
    assert "wrong-token" not in str(refused.errors)

    repo_token_set(repo=repo, token=http_git_server.token)
    record = repo_sync(repo=repo, validate_on_cluster=False)
    assert record.status == SyncRecord.Status.APPLIED, record.errors
    assert record.commit == commit
    assert http_git_server.token not in repo.https_token_encrypted
    # The token travelled only as a header, never in a URL or a stored message.
    assert any(h.startswith("Basic ") for h in http_git_server.seen_auth)
    assert http_git_server.token not in str(record.errors) + record.source


def test_deploy_key_temp_file_is_private_and_removed(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = repo_create(project=project, name="k", url="ssh://git@127.0.0.1:1/x.git", auth="ssh")
    seen: dict[str, object] = {}
    real_run = gitrepo._run

    def spy(args: list[str], **kw: object) -> str:
        env = kw["env"]
        assert isinstance(env, dict)
        if "GIT_SSH_COMMAND" in env:
            key = Path(env["GIT_SSH_COMMAND"].split(" -i ")[1].split()[0])
            seen["mode"] = stat.S_IMODE(os.stat(key).st_mode)
            seen["path"] = key
            seen["cmd"] = env["GIT_SSH_COMMAND"]
        return real_run(args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(gitrepo, "_run", spy)
    record = repo_sync(repo=repo, validate_on_cluster=False)
    assert record.status == SyncRecord.Status.FAILED
    assert seen["mode"] == 0o600
    assert not Path(str(seen["path"])).exists()
    assert "IdentitiesOnly=yes" in str(seen["cmd"]) and "StrictHostKeyChecking=accept-new" in str(seen["cmd"])
