"""A project's notifications (issue 15): rules (admins create, change, delete and
test them), and its recent deliveries. A webhook's generated secret is shown
once; URLs are shown without their path (it may be a credential)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from console.forms import NotificationRuleForm
from console.permissions import Role, get_project_or_404, project_allows, project_role
from console.views.common import request_user
from k8x_core.models import NotificationDelivery, NotificationRule, Project, Service
from k8x_core.notify.deliveries import delivery_test
from k8x_core.notify.rules import RuleInvalid, rule_save, rule_url_display

RECENT_DELIVERIES = 50


def _save(request: HttpRequest, project: Project, form: NotificationRuleForm, rule: NotificationRule | None) -> Any:
    """Save through the domain; its errors go to the field they name. Returns
    (rule, new secret) or None."""
    data = form.cleaned_data
    service = get_object_or_404(Service, project=project, name=data["service"]) if data["service"] else None
    try:
        with transaction.atomic():
            return rule_save(
                project=project,
                rule=rule,
                service=service,
                user=request_user(request),
                **{k: v for k, v in data.items() if k != "service"},
            )
    except RuleInvalid as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return None


def _rule_initial(rule: NotificationRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "service": rule.service.name if rule.service is not None else "",
        "on_failed": rule.on_failed,
        "on_timed_out": rule.on_timed_out,
        "on_recovered": rule.on_recovered,
        "channel": rule.channel,
        "slack": rule.slack,
        "emails": ", ".join(rule.emails),
        "active": rule.active,
    }


@login_required
@require_http_methods(["GET", "POST"])
def project_notifications(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug)
    user = request_user(request)
    is_admin = project_allows(user=user, project=project, role=Role.ADMIN)
    if request.method == "POST":
        get_project_or_404(request.user, slug, Role.ADMIN)
    form = NotificationRuleForm(request.POST or None, project=project)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        saved = _save(request, project, form, None)
        if saved is not None:
            rule, new_secret = saved
            messages.success(request, f"Notification rule {rule.name} created.")
            form = NotificationRuleForm(project=project)
    rules = [
        {"rule": r, "url": rule_url_display(url=r.url)}
        for r in NotificationRule.objects.filter(project=project).select_related("service").order_by("name")
    ]
    deliveries = (
        NotificationDelivery.objects.filter(rule__project=project)
        .select_related("rule", "run__service")
        .order_by("-created_at", "-id")[:RECENT_DELIVERIES]
    )
    response = render(
        request,
        "console/projects/notifications.html",
        {
            "project": project,
            "tab": "notifications",
            "role": project_role(user=user, project=project),
            "is_admin": is_admin,
            "form": form,
            "rules": rules,
            "deliveries": deliveries,
            "new_secret": new_secret,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def notification_rule_edit(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    rule = get_object_or_404(NotificationRule, pk=rule_id, project=project)
    form = NotificationRuleForm(request.POST or None, project=project, initial=_rule_initial(rule))
    if request.method == "POST" and form.is_valid() and _save(request, project, form, rule) is not None:
        messages.success(request, f"Notification rule {rule.name} saved.")
        return redirect("console:project_notifications", slug=slug)
    return render(
        request,
        "console/projects/notification_form.html",
        {"project": project, "rule": rule, "url": rule_url_display(url=rule.url), "form": form},
    )


@login_required
@require_POST
def notification_rule_delete(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    rule = get_object_or_404(NotificationRule, pk=rule_id, project=project)
    rule.delete()
    messages.success(request, f"Notification rule {rule.name} deleted with its deliveries.")
    return redirect("console:project_notifications", slug=slug)


@login_required
@require_POST
def notification_rule_test(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    rule = get_object_or_404(NotificationRule, pk=rule_id, project=project)
    with transaction.atomic():
        delivery_test(rule=rule)
    messages.success(request, f"Test notification of {rule.name} queued; see its delivery below.")
    return redirect("console:project_notifications", slug=slug)
