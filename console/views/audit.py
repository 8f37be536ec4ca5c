"""The project's audit log: every change to its configuration, filtered by kind, actor and time (admin role)."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.permissions import Role, get_project_or_404, project_allows, project_role
from console.views.common import keyset_page, request_user
from k8x_core.models import AuditEntry

KIND_CHOICES = [
    ("", "any"),
    ("service", "service"),
    ("trigger", "trigger"),
    ("config", "config"),
    ("secret", "secret"),
    ("member", "member"),
    ("api_key", "API key"),
    ("webhook", "webhook"),
    ("git_repository", "git repository"),
    ("project", "project (admin site)"),
    ("notification_rule", "notification rule"),
]


class AuditFilterForm(forms.Form):
    kind = forms.ChoiceField(choices=KIND_CHOICES, required=False)
    actor = forms.CharField(
        max_length=200, required=False, help_text="User name, API key, repository, k8x_apply or system (a prefix)."
    )
    since = forms.DateTimeField(required=False, help_text="e.g. 2026-11-27 08:00 (UTC)")


@login_required
@require_GET
def project_audit(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    user = request_user(request)
    form = AuditFilterForm(request.GET or None)
    entries = AuditEntry.objects.filter(project=project)
    if form.is_valid():
        data = form.cleaned_data
        if data["kind"]:
            entries = entries.filter(kind=data["kind"])
        if data["actor"].strip():
            who = data["actor"].strip()
            entries = entries.filter(Q(actor_name__istartswith=who) | Q(actor_kind=who))
        if data["since"]:
            entries = entries.filter(created_at__gte=data["since"])
    page = keyset_page(request, entries, time_field="created_at", pk_type=int)
    return render(
        request,
        "console/projects/audit.html",
        {
            "project": project,
            "tab": "audit",
            "role": project_role(user=user, project=project),
            "is_admin": True,
            "is_owner": project_allows(user=user, project=project, role=Role.OWNER),
            "form": form,
            "page": page,
        },
    )
