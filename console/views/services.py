"""Services: list, detail, create/edit (validated by a cluster dry run), activate, delete,
triggers with a sample-event check, and the manual-run form."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.forms import (
    SampleEventForm,
    ServiceFilterForm,
    ServiceForm,
    TriggerForm,
    manual_run_form_class,
    manual_run_params,
)
from console.permissions import (
    Role,
    get_project_or_404,
    get_service_or_404,
    project_allows,
    projects_with_role,
    services_visible,
)
from console.views.common import request_user
from k8x_core.catalog import services as service_domain
from k8x_core.catalog.service_save import service_save_checked
from k8x_core.hub.matching import trigger_cap_check_new
from k8x_core.models import Config, Project, RunStatus, Scope, Secret, Service, Trigger
from k8x_core.runs.configs import configs_resolve, secret_keys_resolve


@login_required
@require_GET
def service_list(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    form = ServiceFilterForm(request.GET or None)
    services = services_visible(user=user).annotate(trigger_count=Count("triggers")).order_by("project__slug", "name")
    if form.is_valid():
        if form.cleaned_data["tag"]:
            services = services.filter(tags__contains=[form.cleaned_data["tag"].strip()])
        if form.cleaned_data["active"] == "yes":
            services = services.filter(active=True)
        elif form.cleaned_data["active"] == "no":
            services = services.filter(active=False)
    admin_projects = list(projects_with_role(user=user, role=Role.ADMIN))
    return render(
        request,
        "console/services/list.html",
        {"form": form, "services": services, "admin_projects": admin_projects},
    )


def _service_stats(service: Service) -> dict[str, Any]:
    since = timezone.now() - timedelta(days=30)
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    agg = service.runs.filter(created_at__gte=since).aggregate(
        total=Count("pk"),
        finished=Count("pk", filter=Q(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT])),
        succeeded=Count("pk", filter=Q(status=RunStatus.SUCCEEDED)),
        mean=Avg(duration, filter=Q(finished_at__isnull=False, started_at__isnull=False)),
    )
    rate = (100.0 * agg["succeeded"] / agg["finished"]) if agg["finished"] else None
    return {**agg, "success_rate": rate}


@login_required
@require_GET
def service_detail(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    user = request_user(request)
    service = get_service_or_404(user, slug, name)
    project = service.project
    run_form = manual_run_form_class(service.parameters_schema)()
    context = {
        "service": service,
        "project": project,
        "triggers": service.triggers.all(),
        "configs": configs_resolve(service=service),
        "service_configs": Config.objects.filter(scope=Scope.SERVICE, service=service),
        "secret_keys": secret_keys_resolve(service=service),
        "service_secrets": Secret.objects.filter(scope=Scope.SERVICE, service=service),
        "recent_runs": service.runs.select_related("service__project").order_by("-created_at")[:15],
        "stats": _service_stats(service),
        "is_admin": project_allows(user=user, project=project, role=Role.ADMIN),
        "is_owner": project_allows(user=user, project=project, role=Role.OWNER),
        "run_form": run_form,
        "trigger_form": TriggerForm(),
        "sample_form": SampleEventForm(initial={"sample": _sample_for(service)}),
    }
    return render(request, "console/services/detail.html", context)


def _sample_for(service: Service) -> str:
    first = service.triggers.first()
    event_type = first.event_type.replace("*", "example") if first else "com.example.event"
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "sample-1",
            "source": "/console/sample",
            "type": event_type,
            "data": {"amount": 150},
        },
        indent=2,
    )


def _save_service(request: HttpRequest, project: Project, form: ServiceForm) -> Service | None:
    """Dry-run against the cluster, then save; errors go to the field the cluster blamed."""
    service: Service = form.save(commit=False)
    service.project = project
    try:
        service_save_checked(service=service, actor=request_user(request))
    except service_domain.ServiceInvalid as exc:
        form.add_error(exc.field if exc.field in form.fields else None, f"Refused by the cluster: {exc}")
        return None
    except service_domain.ClusterUnavailable as exc:
        form.add_error(None, f"Not saved: {exc}. Try again when the cluster answers.")
        return None
    return service


@login_required
@require_http_methods(["GET", "POST"])
def service_create(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    form = ServiceForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        service = _save_service(request, project, form)
        if service is not None:
            messages.success(request, f"Service {service.name} created.")
            return redirect("console:service_detail", slug=project.slug, name=service.name)
    return render(request, "console/services/form.html", {"form": form, "project": project, "service": None})


@login_required
@require_http_methods(["GET", "POST"])
def service_edit(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    project = service.project
    form = ServiceForm(request.POST or None, instance=service, project=project)
    if request.method == "POST" and form.is_valid():
        saved = _save_service(request, project, form)
        if saved is not None:
            messages.success(request, f"Service {saved.name} saved.")
            return redirect("console:service_detail", slug=project.slug, name=saved.name)
    return render(request, "console/services/form.html", {"form": form, "project": project, "service": service})


@login_required
@require_POST
def service_toggle(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    service_domain.service_set_active(service=service, active=not service.active, actor=request_user(request))
    messages.success(request, f"Service {service.name} {'activated' if service.active else 'deactivated'}.")
    return redirect("console:service_detail", slug=slug, name=name)


@login_required
@require_http_methods(["GET", "POST"])
def service_delete(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    if request.method == "POST":
        if request.POST.get("confirm_name") != service.name:
            messages.error(request, "Type the service's name to confirm the deletion.")
        else:
            service_domain.service_delete(service=service, actor=request_user(request))
            messages.success(request, f"Service {name} deleted with its triggers, configs and runs.")
            return redirect("console:service_list")
    return render(
        request,
        "console/services/delete.html",
        {"service": service, "project": service.project, "run_count": service.runs.count()},
    )


@login_required
@require_POST
def service_run(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    user = request_user(request)
    service = get_service_or_404(user, slug, name, Role.USER)
    form = manual_run_form_class(service.parameters_schema)(request.POST)
    if form.is_valid():
        try:
            run = service_domain.run_manual_create(service=service, params=manual_run_params(form), user=user)
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Manual run queued.")
            return redirect("console:run_detail", run_id=run.pk)
    return render(
        request, "console/services/run.html", {"service": service, "project": service.project, "run_form": form}
    )


# --- triggers -----------------------------------------------------------------


@login_required
@require_POST
def trigger_create(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    form = TriggerForm(request.POST)
    if form.is_valid() and (too_many := trigger_cap_check_new(project_id=service.project_id)):
        form.add_error("event_type", too_many)
    if form.is_valid():
        trigger = form.save(commit=False)
        trigger.service = service
        service_domain.trigger_save(trigger=trigger, actor=request_user(request))
        messages.success(request, f"Trigger on {trigger.event_type} added.")
        return redirect("console:service_detail", slug=slug, name=name)
    return render(
        request,
        "console/services/trigger_form.html",
        {"form": form, "service": service, "project": service.project, "trigger": None},
        status=400,
    )


@login_required
@require_http_methods(["GET", "POST"])
def trigger_edit(request: HttpRequest, slug: str, name: str, trigger_id: int) -> HttpResponse:
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    trigger = get_object_or_404(Trigger, pk=trigger_id, service=service)
    form = TriggerForm(request.POST or None, instance=trigger)
    if request.method == "POST" and form.is_valid():
        service_domain.trigger_save(trigger=form.save(commit=False), actor=request_user(request))
        messages.success(request, "Trigger saved.")
        return redirect("console:service_detail", slug=slug, name=name)
    return render(
        request,
        "console/services/trigger_form.html",
        {"form": form, "service": service, "project": service.project, "trigger": trigger},
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_POST
def trigger_delete(request: HttpRequest, slug: str, name: str, trigger_id: int) -> HttpResponse:
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    trigger = get_object_or_404(Trigger, pk=trigger_id, service=service)
    service_domain.trigger_delete(trigger=trigger, actor=request_user(request))
    messages.success(request, f"Trigger on {trigger.event_type} removed.")
    return redirect("console:service_detail", slug=slug, name=name)


@login_required
@require_POST
def trigger_test(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """Which of the service's triggers (or the trigger being edited) match a sample event.
    Admins only: it evaluates an expression the sender chooses (within the CEL budget)."""
    service = get_service_or_404(request.user, slug, name, Role.ADMIN)
    form = SampleEventForm(request.POST)
    results: list[dict[str, Any]] = []
    if form.is_valid():
        event = form.cleaned_data["sample"]
        candidates: list[Trigger] = list(service.triggers.all())
        draft = TriggerForm(request.POST, prefix="draft") if request.POST.get("draft-event_type") else None
        if draft is not None:
            if draft.is_valid():
                candidates = [Trigger(service=service, **draft.cleaned_data)]
            else:
                form.add_error(None, f"The trigger itself is invalid: {draft.errors.as_text()}")
                candidates = []
        for trigger in candidates:
            try:
                matched = service_domain.trigger_matches_sample(trigger=trigger, event=event)
                results.append({"trigger": trigger, "matched": matched, "error": ""})
            except ValueError as exc:
                results.append({"trigger": trigger, "matched": False, "error": str(exc)})
    return render(
        request,
        "console/services/_trigger_test.html",
        # 200 even for a bad sample: htmx only swaps successful answers, and the errors are the answer.
        {"form": form, "results": results, "service": service},
    )
