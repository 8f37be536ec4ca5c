"""Pausing a service (issue 15): Pause, Resume and Skip pending on the service page (admins)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from console.permissions import Role, get_service_or_404
from console.views.common import request_user
from k8x_core.runs.pause import service_pause as pause
from k8x_core.runs.pause import service_resume as resume
from k8x_core.runs.pause import service_skip_pending as skip_pending


@login_required
@require_POST
def service_pause(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    pause(service=service)
    messages.success(request, f"Service {name} paused: its runs stay queued until you resume it.")
    return redirect("console:service_detail", slug=slug, name=name)


@login_required
@require_POST
def service_resume(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    launched = resume(service=service)
    messages.success(request, f"Service {name} resumed; {len(launched)} queued run(s) sent to launch.")
    return redirect("console:service_detail", slug=slug, name=name)


@login_required
@require_POST
def service_skip_pending(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    skipped = skip_pending(service=service, user=request_user(request))
    messages.success(request, f"{skipped} queued run(s) of {name} skipped.")
    return redirect("console:service_detail", slug=slug, name=name)
