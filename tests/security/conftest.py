"""Fixtures for the security tests: a project on the real cluster (its namespace
made by K8X, so it carries K8X's Pod Security labels and quotas) and the three
entry points a service directory reaches K8X through."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from k8x_core.catalog.git import repo_create, repo_sync
from k8x_core.models import Membership, Project, Role, SyncRecord
from k8x_core.runs.namespaces import project_namespace_forget
from tests.cluster_fixtures import admin_namespace_delete
from tests.k8x_core.catalog.conftest import GitServer, service_write
from tests.k8x_core.catalog.conftest import git_server as git_server  # the git daemon fixture, shared

SERVICE = "policy-svc"
Found = set[tuple[str, str]]

# "<path>: <message> [rule <rule>]", as K8X words a problem: a form error item, a k8x_apply line.
_FORM_PROBLEM = re.compile(r"<li>(\S+): [^<]*\[rule ([a-z-]+)\]</li>")
_APPLY_PROBLEM = re.compile(r"^error: [^:]+: (\S+): .*\[rule ([a-z-]+)\]$", re.MULTILINE)


@pytest.fixture
def project(transactional_db: None, cluster_settings: Any, kube_api: Any) -> Iterator[Project]:
    """A project whose namespace K8X itself creates (deleted afterwards, as admin:
    K8X's identity may not delete namespaces)."""
    slug = f"sec{secrets.token_hex(4)}"
    project = Project.objects.create(slug=slug, namespace=f"k8x-test-{slug}")
    yield project
    project_namespace_forget(project=project)
    admin_namespace_delete(kube_api, project.namespace)


@pytest.fixture
def admin_client(project: Project) -> Client:
    user = User.objects.create_user(username=f"admin-{project.slug}", password="security-test-pw-1")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    return client


def via_console(client: Client, project: Project, *, deployment: str, retries: int = 0) -> Found:
    """POST the service form; the (path, rule) pairs shown at the form's fields."""
    response = client.post(
        reverse("console:service_create", args=[project.slug]),
        {"name": SERVICE, "job_template": deployment, "retries": str(retries), "active": "on"},
    )
    assert response.status_code == 200, "the form was accepted"
    html = response.content.decode()
    found: Found = set()
    for field in ("job_template", "retries"):
        _, sep, rest = html.partition(f'id="id_{field}_errors"')
        if sep:
            found |= set(_FORM_PROBLEM.findall(rest.split("</ul>", 1)[0]))
    return found


def via_apply(root: Path, project: Project) -> Found:
    """``k8x_apply --dry-run``; the (path, rule) pairs it prints."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="nothing applied"):
        call_command("k8x_apply", str(root), "--project", project.slug, "--dry-run", stdout=out, stderr=err)
    return set(_APPLY_PROBLEM.findall(err.getvalue()))


def via_git(git_server: GitServer, tmp_path: Path, project: Project, *, deployment: str, retries: int = 0) -> Found:
    """Push the directory to a git server and sync; the (field, rule) pairs of the failed record."""
    name = f"svc{secrets.token_hex(3)}"
    work = git_server.create(name, tmp_path / f"work-{name}")
    service_write(work.path, SERVICE, deployment=deployment, manifest={"retries": retries})
    work.commit_push("a service")
    repo = repo_create(project=project, name=name, url=git_server.url(name))
    record = repo_sync(repo=repo)
    assert record.status == SyncRecord.Status.FAILED
    return {(e["field"], e["rule"]) for e in record.errors if e.get("rule")}
