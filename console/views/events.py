"""Events: list with outcome, detail with runs, replay, and the "send test event" form."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.forms import EventFilterForm, SendEventForm
from console.permissions import (
    Role,
    events_visible,
    get_event_or_404,
    projects_with_role,
    runs_visible,
    unmatched_counts_visible,
)
from console.views.common import keyset_page, request_user
from console.views.redrive import redrive_allowed
from k8x_core.catalog import services as service_domain
from k8x_core.events.ingest import IngestRefused
from k8x_core.models import Event, EventOutcome, Project


@login_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    form = EventFilterForm(request.GET or None)
    events = events_visible(user=user).select_related("project")
    counts = None
    if form.is_valid():
        if form.cleaned_data["outcome"]:
            events = events.filter(outcome=form.cleaned_data["outcome"])
        if form.cleaned_data["type"]:
            events = events.filter(type__startswith=form.cleaned_data["type"].strip())
        if form.cleaned_data["outcome"] == EventOutcome.UNMATCHED:
            # Only a sample of unmatched events is stored; every one is counted.
            counts = unmatched_counts_visible(user=user)
            if form.cleaned_data["type"]:
                counts = counts.filter(type__startswith=form.cleaned_data["type"].strip())
            counts = counts.order_by("-last_seen_at")[:50]
    if request.GET.get("project"):
        # A project's own events (its rejects included), e.g. from the project's pages.
        events = events.filter(project__slug=request.GET["project"])
    page = keyset_page(request, events, time_field="received_at", pk_type=int)
    return render(request, "console/events/list.html", {"form": form, "page": page, "unmatched_counts": counts})


def _replay_project(user: object, event: Event) -> Project | None:
    """Where a replay is sent from: the event's own project, else the one project of its runs the user is in."""
    mine = projects_with_role(user=user, role=Role.USER)  # type: ignore[arg-type]
    if event.project_id is not None:
        return mine.filter(pk=event.project_id).first()
    candidates = list(mine.filter(services__runs__event=event).distinct()[:2])
    return candidates[0] if len(candidates) == 1 else None


@login_required
@require_GET
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    user = request_user(request)
    event = get_event_or_404(user, event_id)
    runs = runs_visible(user=user).filter(event=event).select_related("service__project").order_by("created_at")
    return render(
        request,
        "console/events/detail.html",
        {
            "event": event,
            "runs": runs,
            "replay_project": _replay_project(user, event),
            "can_redrive": redrive_allowed(user=user, event=event),
        },
    )


@login_required
@require_POST
def event_replay(request: HttpRequest, event_id: int) -> HttpResponse:
    user = request_user(request)
    event = get_event_or_404(user, event_id)
    project = _replay_project(user, event)
    if project is None:
        messages.error(request, "Replay needs the event's project; it ran in several, ask an administrator.")
        return redirect("console:event_detail", event_id=event.pk)
    try:
        new_id = service_domain.event_replay(event=event, user=user, project_slug=project.slug)
    except (ValueError, IngestRefused) as exc:
        messages.error(request, f"Not replayed: {exc}")
    else:
        messages.success(request, f"Replayed as event {new_id} (same correlation id).")
    if event.correlation_id:
        return redirect("console:correlation_detail", correlation_id=event.correlation_id)
    return redirect("console:event_detail", event_id=event.pk)


@login_required
@require_http_methods(["GET", "POST"])
def event_send(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    projects = projects_with_role(user=user, role=Role.USER).order_by("slug")
    initial: dict[str, Any] = {}
    if request.GET.get("project"):
        initial["project"] = projects.filter(slug=request.GET["project"]).first()
    if request.GET.get("type"):
        initial["event_type"] = request.GET["type"]
    form = SendEventForm(request.POST or None, projects=projects, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            correlation_id = service_domain.event_send(
                user=user,
                project_slug=data["project"].slug,
                type=data["event_type"],
                source=data["event_source"],
                data=data["payload"],
                subject=data["subject"],
            )
        except IngestRefused as exc:
            field_map = {"type": "event_type", "source": "event_source", "subject": "subject", "data": "payload"}
            form.add_error(field_map.get(exc.field), exc.message)
        else:
            messages.success(request, f"Event accepted (correlation {correlation_id}).")
            return redirect("console:correlation_wait", correlation_id=correlation_id)
    return render(request, "console/events/send.html", {"form": form})


@login_required
@require_GET
def correlation_wait(request: HttpRequest, correlation_id: str) -> HttpResponse:
    """Where "send test event" lands: the flow page once the hub has recorded it, a waiting page until then."""
    user = request_user(request)
    seen = events_visible(user=user).filter(correlation_id=correlation_id).exists()
    if seen:
        return redirect("console:correlation_detail", correlation_id=correlation_id)
    return render(request, "console/events/wait.html", {"correlation_id": correlation_id})
