"""Git repositories of a project: add, deploy key (shown, regenerated), HTTPS token,
"Sync now", and the sync history with every change and problem.

Viewing needs the user role; changing anything (and syncing, which changes
services) needs admin, like services themselves.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.permissions import Role, get_project_or_404, project_allows, project_role
from console.views.common import request_user
from k8x_core.catalog.git import (
    RepoInvalid,
    repo_create,
    repo_key_regenerate,
    repo_sync,
    repo_token_set,
)
from k8x_core.catalog.git import (
    repo_delete as repo_remove,
)
from k8x_core.models import GitRepository, Project, SyncRecord

HISTORY_SIZE = 50


class RepositoryForm(forms.Form):
    name = forms.SlugField(max_length=63, help_text="A short name within the project, e.g. services.")
    url = forms.CharField(
        max_length=1000,
        label="URL",
        help_text="git@host:org/repo.git or ssh://… (deploy key), https://… (public or token), git://…",
    )
    branch = forms.CharField(max_length=255, initial="main")
    path = forms.CharField(
        max_length=500, required=False, help_text="Sub-directory holding the service directories (empty: the root)."
    )
    auth = forms.ChoiceField(
        choices=GitRepository.Auth.choices,
        initial=GitRepository.Auth.NONE,
        label="Authentication",
        help_text="An SSH deploy key is generated for you; add its public key to the repository (read-only).",
    )
    token = forms.CharField(
        required=False,
        label="HTTPS token",
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Only for HTTPS token authentication. Stored encrypted; never shown again.",
    )


class TokenForm(forms.Form):
    token = forms.CharField(label="New HTTPS token", widget=forms.PasswordInput(render_value=False))


def _repo_or_404(project: Project, name: str) -> GitRepository:
    try:
        return GitRepository.objects.select_related("project").get(project=project, name=name)
    except GitRepository.DoesNotExist:
        raise Http404("No such repository.") from None


def _context(request: HttpRequest, project: Project, **extra: Any) -> dict[str, Any]:
    user = request_user(request)
    return {
        "project": project,
        "tab": "repos",
        "role": project_role(user=user, project=project),
        "is_admin": project_allows(user=user, project=project, role=Role.ADMIN),
        "is_owner": project_allows(user=user, project=project, role=Role.OWNER),
        **extra,
    }


def _summary(record: SyncRecord) -> dict[str, int]:
    counts = {"create": 0, "update": 0, "deactivate": 0, "unchanged": 0}
    for change in record.changes or []:
        if isinstance(change, dict) and change.get("action") in counts:
            counts[change["action"]] += 1
    return counts


def change_fields(change: dict[str, Any]) -> list[dict[str, str]]:
    """A change's field diff as text: old and new JSON, or a unified diff for the Job template."""
    out: list[dict[str, str]] = []
    for field, d in (change.get("diff") or {}).items():
        if not isinstance(d, dict):
            continue
        if "diff" in d:
            out.append({"field": field, "diff": str(d["diff"])})
        else:
            out.append({"field": field, "old": json.dumps(d.get("old")), "new": json.dumps(d.get("new"))})
    return out


def _history(records: Any) -> list[dict[str, Any]]:
    return [{"record": r, "counts": _summary(r)} for r in records]


@login_required
@require_http_methods(["GET", "POST"])
def repo_list(request: HttpRequest, slug: str) -> HttpResponse:
    role = Role.ADMIN if request.method == "POST" else Role.USER
    project = get_project_or_404(request.user, slug, role)
    form = RepositoryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            repo = repo_create(
                project=project,
                name=data["name"],
                url=data["url"].strip(),
                branch=data["branch"].strip(),
                path=data["path"],
                auth=data["auth"],
                token=data["token"],
                actor=request_user(request),
            )
        except RepoInvalid as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            if repo.auth == GitRepository.Auth.SSH:
                messages.success(request, "Repository added. Add the deploy key below to it, then sync.")
            else:
                messages.success(request, "Repository added. Sync it to deploy its services.")
            return redirect("console:repo_detail", slug=project.slug, name=repo.name)
    repos = GitRepository.objects.filter(project=project).order_by("name")
    return render(request, "console/repos/list.html", _context(request, project, repos=repos, form=form))


@login_required
@require_GET
def repo_detail(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug)
    repo = _repo_or_404(project, name)
    records = SyncRecord.objects.filter(repository=repo).select_related("requested_by").order_by("-created_at", "-pk")
    context = _context(
        request,
        project,
        repo=repo,
        history=_history(records[:HISTORY_SIZE]),
        services=repo.services.order_by("name"),
        token_form=TokenForm(),
    )
    response = render(request, "console/repos/detail.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def repo_sync_now(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    repo = _repo_or_404(project, name)
    record = repo_sync(repo=repo, requested_by=request_user(request))
    if record.status == SyncRecord.Status.APPLIED:
        counts = _summary(record)
        messages.success(
            request,
            f"Synced {record.commit[:12]}: {counts['create']} created, {counts['update']} updated, "
            f"{counts['deactivate']} deactivated, {counts['unchanged']} unchanged.",
        )
    else:
        messages.error(request, f"Sync failed with {len(record.errors)} problem(s); nothing was applied.")
    return redirect("console:sync_detail", slug=project.slug, sync_id=record.pk)


@login_required
@require_POST
def repo_key_regenerate_view(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    repo = _repo_or_404(project, name)
    if repo.auth != GitRepository.Auth.SSH:
        messages.error(request, "Only SSH repositories have a deploy key.")
    else:
        repo_key_regenerate(repo=repo, actor=request_user(request))
        messages.success(request, "New deploy key generated. Replace the old one on your git host before syncing.")
    return redirect("console:repo_detail", slug=project.slug, name=repo.name)


@login_required
@require_POST
def repo_token(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    repo = _repo_or_404(project, name)
    form = TokenForm(request.POST)
    if repo.auth != GitRepository.Auth.HTTPS_TOKEN:
        messages.error(request, "This repository does not use an HTTPS token.")
    elif not form.is_valid():
        messages.error(request, "Enter the token.")
    else:
        try:
            repo_token_set(repo=repo, token=form.cleaned_data["token"], actor=request_user(request))
        except RepoInvalid as exc:
            messages.error(request, f"Token {exc}.")
        else:
            messages.success(request, "Token replaced.")
    return redirect("console:repo_detail", slug=project.slug, name=repo.name)


@login_required
@require_POST
def repo_delete(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    repo = _repo_or_404(project, name)
    repo_remove(repo=repo, actor=request_user(request))
    messages.success(
        request, f"Repository {name} removed. Its services stay as they are; delete or deactivate them on their pages."
    )
    return redirect("console:repo_list", slug=project.slug)


@login_required
@require_GET
def sync_detail(request: HttpRequest, slug: str, sync_id: int) -> HttpResponse:
    project = get_project_or_404(request.user, slug)
    try:
        record = SyncRecord.objects.select_related("repository", "requested_by").get(pk=sync_id, project=project)
    except SyncRecord.DoesNotExist:
        raise Http404("No such sync.") from None
    changes = [c for c in record.changes or [] if isinstance(c, dict)]
    order = {"create": 0, "update": 1, "deactivate": 2, "unchanged": 3}
    changes.sort(key=lambda c: (order.get(str(c.get("action")), 9), str(c.get("service"))))
    rows = [{"change": c, "fields": change_fields(c)} for c in changes]
    context = _context(request, project, record=record, changes=rows, counts=_summary(record))
    return render(request, "console/repos/sync.html", context)
