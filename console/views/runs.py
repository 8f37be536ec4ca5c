"""Runs: list, detail with the live log viewer, cancel, re-run, log download, correlation flow."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from console.forms import RunFilterForm
from console.permissions import (
    Role,
    events_visible,
    get_run_or_404,
    project_allows,
    runs_visible,
    services_visible,
)
from console.views.common import keyset_page, request_user
from k8x_core.models import TERMINAL_STATUSES, Run
from k8x_core.runs import jobspec, launch
from k8x_core.runs.configs import configs_resolve, secret_keys_resolve


@login_required
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    services = services_visible(user=user).order_by("project__slug", "name")
    form = RunFilterForm(request.GET or None, services=services)
    runs = runs_visible(user=user).select_related("service__project", "event")
    if form.is_valid():
        data = form.cleaned_data
        if data["service"]:
            runs = runs.filter(service=data["service"])
        if data["status"]:
            runs = runs.filter(status=data["status"])
        if data["trigger"]:
            runs = runs.filter(trigger_kind=data["trigger"])
        if data["since"]:
            runs = runs.filter(created_at__gte=data["since"])
        if data["until"]:
            runs = runs.filter(created_at__lte=data["until"])
    page = keyset_page(request, runs, time_field="created_at", pk_type=uuid.UUID)
    return render(request, "console/runs/list.html", {"form": form, "page": page})


@login_required
@require_GET
def run_badge(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """The status badge alone, polled by lists until the run ends."""
    run = get_run_or_404(request.user, run_id)
    response = render(request, "console/runs/_badge.html", {"run": run})
    return response


def _environment(run: Run) -> list[dict[str, Any]]:
    service = run.service
    rows: list[dict[str, Any]] = [{"name": name, "kind": "k8x", "value": None} for name in jobspec.CONTRACT_VARIABLES]
    rows += [{"name": k, "kind": "config", "value": v} for k, v in configs_resolve(service=service).items()]
    rows += [{"name": k, "kind": "secret", "value": None} for k in secret_keys_resolve(service=service)]
    return rows


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    user = request_user(request)
    run = get_run_or_404(user, run_id)
    project = run.service.project
    context = {
        "run": run,
        "project": project,
        "environment": _environment(run),
        "can_act": project_allows(user=user, project=project, role=Role.USER),
        "is_terminal": run.status in TERMINAL_STATUSES,
        "retries": run.retries.order_by("created_at"),
        "ws_path": f"/ws/runs/{run.pk}/logs/",
    }
    return render(request, "console/runs/detail.html", context)


@login_required
@require_GET
def run_summary(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """The run's facts block, re-fetched by the log viewer when the status changes."""
    run = get_run_or_404(request.user, run_id)
    return render(request, "console/runs/_summary.html", {"run": run, "is_terminal": run.status in TERMINAL_STATUSES})


@login_required
@require_GET
def run_log_download(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    run = get_run_or_404(request.user, run_id)
    response = HttpResponse(run.log, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{run.service.name}-{run.pk}.log"'
    return response


@login_required
@require_POST
def run_cancel(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    user = request_user(request)
    run = get_run_or_404(user, run_id, Role.USER)
    # run_cancel never waits on the cluster: a Job it cannot delete now, the watcher deletes.
    if launch.run_cancel(run_id=run.pk, user=user):
        messages.success(request, "Run cancelled.")
    else:
        messages.info(request, "The run had already ended.")
    return redirect("console:run_detail", run_id=run.pk)


@login_required
@require_POST
def run_rerun(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    user = request_user(request)
    run = get_run_or_404(user, run_id, Role.USER)
    new_run = launch.run_rerun(run_id=run.pk, user=user)
    messages.success(request, "Re-run queued.")
    return redirect("console:run_detail", run_id=new_run.pk)


@login_required
@require_GET
def correlation_detail(request: HttpRequest, correlation_id: str) -> HttpResponse:
    """Every visible run and event of one flow, in time order."""
    user = request_user(request)
    runs = list(
        runs_visible(user=user)
        .filter(correlation_id=correlation_id)
        .select_related("service__project", "event")
        .order_by("created_at")[:500]
    )
    events = list(events_visible(user=user).filter(correlation_id=correlation_id).order_by("received_at")[:500])
    if not runs and not events:
        raise Http404("No such flow.")
    items: list[dict[str, Any]] = [{"kind": "run", "at": r.created_at, "run": r} for r in runs]
    items += [{"kind": "event", "at": e.received_at, "event": e} for e in events]
    items.sort(key=lambda i: i["at"])
    return render(
        request,
        "console/correlation.html",
        {"correlation_id": correlation_id, "items": items, "runs": runs, "events": events},
    )


def run_url(run: Run) -> str:
    return reverse("console:run_detail", kwargs={"run_id": run.pk})
