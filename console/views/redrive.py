"""Dead letters and failed runs: edit and re-drive a rejected event; re-drive failed runs in bulk (owner)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from console.permissions import Role, get_event_or_404, get_service_or_404, project_allows
from console.views.common import request_user
from k8x_core.events.ingest import IngestRefused
from k8x_core.events.redrive import event_redrive, rejected_event_draft
from k8x_core.models import Event, EventOutcome
from k8x_core.runs.redrive import runs_redrive


class RedriveEventForm(forms.Form):
    event = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "class": "mono", "spellcheck": "false"}),
        help_text="The event in CloudEvents structured JSON; fix what was rejected.",
    )
    keep_id = forms.BooleanField(
        required=False,
        label="Keep the id",
        help_text="Off: the event gets a new id (a redelivery of an id is a duplicate).",
    )

    def clean_event(self) -> dict[str, Any]:
        try:
            value = json.loads(self.cleaned_data["event"])
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object (one CloudEvent)")
        return value


def redrive_allowed(*, user: User, event: Event) -> bool:
    """A rejected event of a project, and the user owns that project."""
    return (
        event.outcome == EventOutcome.REJECTED
        and event.project is not None
        and project_allows(user=user, project=event.project, role=Role.OWNER)
    )


@login_required
@require_http_methods(["GET", "POST"])
def event_redrive_view(request: HttpRequest, event_id: int) -> HttpResponse:
    user = request_user(request)
    event = get_event_or_404(user, event_id)
    if event.outcome != EventOutcome.REJECTED or event.project is None:
        raise Http404("Only a rejected event of a project can be re-driven.")
    if not redrive_allowed(user=user, event=event):
        raise PermissionDenied(f"Re-driving needs the owner role in project {event.project.slug}.")
    initial = {"event": json.dumps(rejected_event_draft(event=event), indent=2, ensure_ascii=False)}
    form = RedriveEventForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            accepted = event_redrive(
                event=event, edited=form.cleaned_data["event"], user=user, keep_id=form.cleaned_data["keep_id"]
            )
        except IngestRefused as exc:
            form.add_error("event", f"{exc.field}: {exc.message}" if exc.field else exc.message)
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Re-driven as event {accepted.id} (correlation {accepted.correlation_id}).")
            return redirect("console:correlation_wait", correlation_id=accepted.correlation_id)
    return render(request, "console/events/redrive.html", {"event": event, "form": form})


class RedriveRunsForm(forms.Form):
    since = forms.DateTimeField(help_text="Runs created at or after (UTC), e.g. 2026-11-27 08:00")
    until = forms.DateTimeField(help_text="… and before (UTC)")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["until"] <= data["since"]:
            self.add_error("until", "must be after the start")
        return data


@login_required
@require_http_methods(["GET", "POST"])
def service_redrive_view(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    user = request_user(request)
    service = get_service_or_404(user, slug, name, Role.OWNER)
    now = timezone.now().replace(second=0, microsecond=0)
    form = RedriveRunsForm(request.POST or None, initial={"since": now - timedelta(days=1), "until": now})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        result = runs_redrive(service=service, since=data["since"], until=data["until"], user=user)
        more = f" {result.remaining} more are left: submit again." if result.remaining else ""
        messages.success(request, f"{len(result.retries)} failed run(s) re-driven.{more}")
        return redirect("console:service_detail", slug=slug, name=name)
    return render(
        request, "console/services/redrive.html", {"service": service, "project": service.project, "form": form}
    )
