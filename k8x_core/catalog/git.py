"""Git repositories of a project: deploy keys, tokens, fetching, syncing.

Git runs as the `git` CLI through ``subprocess`` with argument lists (never a
shell). Every call gets a clean environment: no user or system git config, no
terminal prompts, and only the git/ssh/http(s) transports, so a repository URL
can never select ``ext::`` (which runs commands) or read this machine's files.
Secrets never appear in a URL, an argument list or an error message: the SSH
key goes to a 0600 file named in ``GIT_SSH_COMMAND``, the HTTPS token to an
``http.extraHeader`` passed through ``GIT_CONFIG_*`` environment variables.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from k8x_core.audit import Actor, audit_fields, audit_record
from k8x_core.catalog import servicedirs
from k8x_core.crypto import secret_decrypt, secret_encrypt
from k8x_core.models import DNS_LABEL_REGEX, GitRepository, Project, SyncRecord

log = logging.getLogger(__name__)

# Who changes a repository: a user, an Actor, or None (K8X itself).
AuditActor = Actor | AbstractBaseUser | None
# Written by every sync; not a change anyone made to the repository's settings.
_REPO_STATUS_FIELDS = ("last_synced_at", "last_commit")
# scp-like SSH address: user@host:path (no scheme); git treats it as ssh.
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:(?!//)[^\s]+$")
_URL = re.compile(r"^(?P<scheme>ssh|git|https?)://[^\s/@]+(@[^\s/]+)?(/[^\s]*)?$")
_ALLOWED_PROTOCOLS = "git:ssh:http:https"


class GitError(RuntimeError):
    """A git command failed; the message is safe to show (no secrets)."""


class RepoInvalid(ValueError):
    """A repository setting is not acceptable; ``field`` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def _timeout() -> int:
    return int(settings.K8X_GIT_TIMEOUT_SECONDS)


# --- validation -----------------------------------------------------------


def url_scheme(url: str) -> str:
    """``ssh``, ``git``, ``http`` or ``https``; raises RepoInvalid for anything else."""
    if _SCP_LIKE.match(url):
        return "ssh"
    m = _URL.match(url)
    if not m:
        raise RepoInvalid(
            "must be an ssh://, git@host:path, https://, http:// or git:// URL without spaces", field="url"
        )
    if "@" in url.split("://", 1)[1].split("/", 1)[0] and m["scheme"] in ("http", "https"):
        # Credentials in a URL end up in logs and error messages.
        raise RepoInvalid("must not carry credentials; use the HTTPS token instead", field="url")
    return m["scheme"]


def branch_validate(branch: str) -> None:
    if not branch or branch.startswith("-"):
        raise RepoInvalid("is required and must not start with '-'", field="branch")
    proc = subprocess.run(
        ["git", "check-ref-format", "--branch", branch],
        capture_output=True,
        text=True,
        env=_git_env(Path(tempfile.gettempdir())),
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        raise RepoInvalid(f"{branch!r} is not a valid branch name", field="branch")


def path_validate(path: str) -> str:
    """A relative sub-directory without '..'; returned normalised ('' for the root)."""
    path = path.strip().strip("/")
    if not path:
        return ""
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in path or "\x00" in path:
        raise RepoInvalid("must be a relative directory without '.' or '..' parts", field="path")
    return path


def repo_validate(*, name: str, url: str, branch: str, path: str, auth: str) -> str:
    """Check a repository's settings; returns the normalised path."""
    if not re.match(DNS_LABEL_REGEX, name) or len(name) > 63:
        raise RepoInvalid("must be a DNS label: lower-case letters, digits and '-'", field="name")
    scheme = url_scheme(url)
    if auth not in GitRepository.Auth.values:
        raise RepoInvalid(f"must be one of {', '.join(GitRepository.Auth.values)}", field="auth")
    if auth == GitRepository.Auth.SSH and scheme != "ssh":
        raise RepoInvalid("a deploy key needs an SSH URL (ssh://… or git@host:path)", field="url")
    if auth == GitRepository.Auth.HTTPS_TOKEN and scheme not in ("https", "http"):
        raise RepoInvalid("a token needs an https:// URL", field="url")
    branch_validate(branch)
    return path_validate(path)


# --- keys and tokens ------------------------------------------------------


def deploy_key_generate(*, comment: str) -> tuple[str, str]:
    """A new ed25519 key pair: (public key line, private key in OpenSSH format)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.OpenSSH,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        encoding=serialization.Encoding.OpenSSH, format=serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} {comment}", private


def _repo_audit(*, repo: GitRepository, action: str, before: dict[str, Any] | None, actor: AuditActor) -> None:
    # audit_fields keeps the credential columns only to show that they changed (k8x_core.audit redacts them).
    audit_record(
        project=repo.project,
        actor=actor,
        action=action,
        kind="git_repository",
        name=repo.name,
        object_id=repo.pk,
        before=before,
        after=None if action == "delete" else audit_fields(repo, exclude=_REPO_STATUS_FIELDS),
    )


def _deploy_key_put(repo: GitRepository) -> str:
    """A new deploy key pair on ``repo`` (not saved); returns the public key."""
    public, private = deploy_key_generate(comment=f"k8x-deploy-{repo.project.slug}-{repo.name}")
    repo.deploy_public_key = public
    repo.deploy_private_key_encrypted = secret_encrypt(plaintext=private)
    return public


def _token_put(repo: GitRepository, token: str) -> None:
    """The HTTPS token on ``repo``, encrypted (not saved)."""
    token = token.strip()
    if not token or any(c in token for c in "\r\n"):
        raise RepoInvalid("must be a single non-empty line", field="token")
    repo.https_token_encrypted = secret_encrypt(plaintext=token)


def repo_key_regenerate(*, repo: GitRepository, actor: AuditActor = None) -> str:
    """Give the repository a new deploy key pair; returns the public key to add to the git host."""
    before = audit_fields(repo, exclude=_REPO_STATUS_FIELDS)
    public = _deploy_key_put(repo)
    repo.save(update_fields=["deploy_public_key", "deploy_private_key_encrypted"])
    _repo_audit(repo=repo, action="update", before=before, actor=actor)
    return public


def repo_token_set(*, repo: GitRepository, token: str, actor: AuditActor = None) -> None:
    before = audit_fields(repo, exclude=_REPO_STATUS_FIELDS)
    _token_put(repo, token)
    repo.save(update_fields=["https_token_encrypted"])
    _repo_audit(repo=repo, action="update", before=before, actor=actor)


@transaction.atomic
def repo_delete(*, repo: GitRepository, actor: AuditActor = None) -> None:
    """Remove a repository; its services stay as they are."""
    _repo_audit(repo=repo, action="delete", before=audit_fields(repo, exclude=_REPO_STATUS_FIELDS), actor=actor)
    repo.delete()


@transaction.atomic
def repo_create(
    *,
    project: Project,
    name: str,
    url: str,
    branch: str = "main",
    path: str = "",
    auth: str = GitRepository.Auth.NONE,
    token: str = "",
    actor: AuditActor = None,
) -> GitRepository:
    """Register a repository; an SSH repository gets a fresh deploy key."""
    path = repo_validate(name=name, url=url, branch=branch, path=path, auth=auth)
    if GitRepository.objects.filter(project=project, name=name).exists():
        raise RepoInvalid(f"project {project.slug} already has a repository named {name!r}", field="name")
    if auth == GitRepository.Auth.HTTPS_TOKEN and not token.strip():
        raise RepoInvalid("is required for HTTPS token authentication", field="token")
    repo = GitRepository.objects.create(project=project, name=name, url=url, branch=branch, path=path, auth=auth)
    if auth == GitRepository.Auth.SSH:
        _deploy_key_put(repo)
    if auth == GitRepository.Auth.HTTPS_TOKEN:
        _token_put(repo, token)
    repo.save()
    _repo_audit(repo=repo, action="create", before=None, actor=actor)
    return repo


# --- running git ----------------------------------------------------------


def _git_env(home: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ALLOW_PROTOCOL": _ALLOWED_PROTOCOLS,
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
    }
    return env


@dataclass
class _Auth:
    env: dict[str, str]
    redact: list[str]


def _auth_prepare(repo: GitRepository, workdir: Path) -> _Auth:
    env: dict[str, str] = {}
    redact: list[str] = []
    if repo.auth == GitRepository.Auth.SSH:
        if not repo.deploy_private_key_encrypted:
            raise GitError("the repository has no deploy key; regenerate one")
        key_path = workdir / "deploy_key"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret_decrypt(ciphertext=repo.deploy_private_key_encrypted))
        known_hosts = workdir / "known_hosts"
        env["GIT_SSH_COMMAND"] = shlex.join(
            [
                "ssh",
                "-F",
                os.devnull,
                "-i",
                str(key_path),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                f"UserKnownHostsFile={known_hosts}",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=20",
            ]
        )
    elif repo.auth == GitRepository.Auth.HTTPS_TOKEN:
        if not repo.https_token_encrypted:
            raise GitError("the repository has no HTTPS token; set one")
        token = secret_decrypt(ciphertext=repo.https_token_encrypted)
        # Basic auth with any user name is what GitHub, GitLab and Gitea accept for tokens.
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
        redact += [token, basic]
    return _Auth(env=env, redact=redact)


def _run(args: list[str], *, cwd: Path, env: dict[str, str], redact: list[str]) -> str:
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=_timeout(), check=False)
    except subprocess.TimeoutExpired:
        raise GitError(f"git timed out after {_timeout()} s") from None
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip()
        for secret in redact:
            if secret:
                message = message.replace(secret, "******")
        raise GitError(message or f"git exited with {proc.returncode}")
    return proc.stdout


def repo_fetch(*, repo: GitRepository, dest: Path) -> str:
    """Fetch the repository's branch into ``dest`` (a new directory); returns the commit id."""
    url_scheme(repo.url)  # refuse anything a console edit may have slipped past the form
    with tempfile.TemporaryDirectory(prefix="k8x-git-auth-") as tmp:
        workdir = Path(tmp)
        auth = _auth_prepare(repo, workdir)
        env = {**_git_env(workdir), **auth.env}
        dest.mkdir(parents=True, exist_ok=True)
        _run(["git", "init", "-q", str(dest)], cwd=workdir, env=env, redact=auth.redact)
        _run(
            ["git", "fetch", "-q", "--depth", "1", "--no-tags", "--", repo.url, f"refs/heads/{repo.branch}"],
            cwd=dest,
            env=env,
            redact=auth.redact,
        )
        _run(["git", "checkout", "-q", "--detach", "FETCH_HEAD"], cwd=dest, env=env, redact=auth.redact)
        return _run(["git", "rev-parse", "HEAD"], cwd=dest, env=env, redact=[]).strip()


def worktree_commit(*, path: Path) -> str:
    """The HEAD commit of the git work tree holding ``path``, or '' when it is not in one."""
    env = _git_env(Path(tempfile.gettempdir()))
    # The directory may belong to another user (a CI checkout); reading HEAD is harmless.
    env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"})
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "HEAD"],
            cwd=path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


# --- syncing --------------------------------------------------------------


def repo_sync(
    *, repo: GitRepository, requested_by: AbstractBaseUser | None = None, validate_on_cluster: bool | None = None
) -> SyncRecord:
    """Fetch the branch, validate every service directory, apply all or nothing.

    ``validate_on_cluster`` (default: setting K8X_GIT_VALIDATE_ON_CLUSTER, on)
    dry-runs each deployment.yaml on the API server. Always returns the
    SyncRecord written (status applied or failed)."""
    if validate_on_cluster is None:
        validate_on_cluster = bool(settings.K8X_GIT_VALIDATE_ON_CLUSTER)
    with tempfile.TemporaryDirectory(prefix="k8x-sync-") as tmp:
        checkout = Path(tmp) / "checkout"
        commit = ""
        try:
            commit = repo_fetch(repo=repo, dest=checkout)
        except (GitError, OSError) as exc:
            log.warning("sync of %s failed to fetch: %s", repo, exc)
            errors = [servicedirs.SpecError(file="", field="", message=f"git fetch of {repo.branch} failed: {exc}")]
        else:
            root = checkout / repo.path if repo.path else checkout
            # A symlinked path in the repository must not lead outside the checkout.
            if not root.is_dir() or not root.resolve().is_relative_to(checkout.resolve()) or root.is_symlink():
                errors = [
                    servicedirs.SpecError(file=repo.path, field="path", message="no such directory in the branch")
                ]
            else:
                loaded = servicedirs.servicedir_load(
                    root=root, project=repo.project, validate_on_cluster=validate_on_cluster
                )
                errors = loaded.errors
        if errors:
            record = servicedirs.sync_failed(
                project=repo.project,
                repository=repo,
                source=repo.url,
                commit=commit,
                requested_by=requested_by,
                errors=errors,
            )
        else:
            plan = servicedirs.plan_build(
                project=repo.project, project_slug=repo.project.slug, specs=loaded.specs, repository=repo
            )
            record = servicedirs.plan_apply(plan=plan, source=repo.url, commit=commit, requested_by=requested_by)
    now = timezone.now()
    if record.status == SyncRecord.Status.APPLIED:
        GitRepository.objects.filter(pk=repo.pk).update(last_synced_at=now, last_commit=commit)
        repo.last_commit = commit
    else:
        GitRepository.objects.filter(pk=repo.pk).update(last_synced_at=now)
    repo.last_synced_at = now
    return record


def repos_sync_due(*, now: datetime, limit: int | None = None) -> list[SyncRecord]:
    """Sync the repositories not synced within K8X_GIT_SYNC_INTERVAL_SECONDS (0 = never).

    For the scheduler loop (``limit=1`` keeps each pass short: a fetch may
    take up to K8X_GIT_TIMEOUT_SECONDS). Each repository is claimed by a
    conditional UPDATE of ``last_synced_at``, so two schedulers never sync the
    same one twice."""
    interval = int(settings.K8X_GIT_SYNC_INTERVAL_SECONDS or 0)
    if interval <= 0:
        return []
    cutoff = now - timedelta(seconds=interval)
    records: list[SyncRecord] = []
    due = GitRepository.objects.filter(Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=cutoff))
    attempted = 0
    for repo in due.select_related("project").order_by(F("last_synced_at").asc(nulls_first=True), "pk"):
        if limit is not None and attempted >= limit:
            break
        claimed = GitRepository.objects.filter(pk=repo.pk, last_synced_at=repo.last_synced_at).update(
            last_synced_at=now
        )
        if claimed != 1:
            continue
        attempted += 1
        try:
            records.append(repo_sync(repo=repo))
        except Exception:
            # One broken repository must not stop the scheduler or the others.
            log.exception("periodic sync of %s failed", repo)
    return records
