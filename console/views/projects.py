"""Project pages: overview, configs, secrets (write-only), API keys (shown once), webhooks, members."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.forms import (
    ApiKeyForm,
    ConfigForm,
    MemberForm,
    RegistryLoginForm,
    RunDefaultsForm,
    SecretForm,
    WebhookForm,
)
from console.permissions import Role, get_project_or_404, project_allows, project_role
from console.views.common import request_user
from k8x_core.events.apikeys import ApiKeyCapReached, ApiKeyRoleRefused, apikey_create, apikey_revoke
from k8x_core.events.webhooks import webhook_create, webhook_curl_example, webhook_delete, webhook_url
from k8x_core.members import LastOwner, member_remove, member_set
from k8x_core.models import ApiKey, Config, Membership, Project, Scope, Secret, Service, Webhook
from k8x_core.projects import ProjectDefaultsInvalid, project_defaults_set, projects_visible
from k8x_core.runs.configs import RegistryLoginInvalid, config_set, entry_delete, secret_set
from k8x_core.runs.registry import registry_login_save, secret_entry_delete


def _context(request: HttpRequest, project: Project, tab: str, **extra: Any) -> dict[str, Any]:
    user = request_user(request)
    return {
        "project": project,
        "tab": tab,
        "role": project_role(user=user, project=project),
        "is_admin": project_allows(user=user, project=project, role=Role.ADMIN),
        "is_owner": project_allows(user=user, project=project, role=Role.OWNER),
        **extra,
    }


def _service_choice(project: Project, raw: str | None) -> Service | None:
    if not raw:
        return None
    return get_object_or_404(Service, project=project, name=raw)


@login_required
@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    projects = projects_visible(user=user).order_by("slug")
    roles = dict(Membership.objects.filter(user_id=user.pk).values_list("project_id", "role"))
    rows = [{"project": p, "role": "owner (staff)" if user.is_superuser else roles.get(p.pk)} for p in projects]
    return render(request, "console/projects/list.html", {"rows": rows})


@login_required
@require_GET
def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug)
    services = Service.objects.filter(project=project).order_by("name")
    return render(request, "console/projects/detail.html", _context(request, project, "overview", services=services))


@login_required
@require_http_methods(["GET", "POST"])
def project_configs(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug)
    form = ConfigForm(request.POST or None)
    if request.method == "POST":
        project = get_project_or_404(request.user, slug, Role.ADMIN)
        if form.is_valid():
            service = _service_choice(project, request.POST.get("service"))
            if request.POST.get("delete"):
                for entry in Config.objects.filter(
                    project=project,
                    service=service,
                    key=form.cleaned_data["key"],
                    scope=Scope.SERVICE if service else Scope.PROJECT,
                ):
                    entry_delete(entry=entry, actor=request_user(request))
                messages.success(request, f"Config {form.cleaned_data['key']} removed.")
            else:
                config_set(
                    key=form.cleaned_data["key"],
                    value=form.cleaned_data["value"],
                    project=project,
                    service=service,
                    actor=request_user(request),
                )
                messages.success(request, f"Config {form.cleaned_data['key']} saved.")
            return redirect("console:project_configs", slug=slug)
    entries = Config.objects.filter(project=project).select_related("service").order_by("service__name", "key")
    services = Service.objects.filter(project=project).order_by("name")
    return render(
        request,
        "console/projects/configs.html",
        _context(request, project, "configs", form=form, entries=entries, services=services),
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_secrets(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug)
    form = SecretForm(request.POST or None)
    login_form = RegistryLoginForm(prefix="login")
    if request.method == "POST":
        project = get_project_or_404(request.user, slug, Role.OWNER)
        if request.POST.get("kind") == "registry":
            form, login_form = SecretForm(), RegistryLoginForm(request.POST, prefix="login")
            if login_form.is_valid():
                data = login_form.cleaned_data
                try:
                    _secret, not_synced = registry_login_save(project=project, actor=request_user(request), **data)
                except RegistryLoginInvalid as exc:
                    login_form.add_error(exc.field, str(exc))
                else:
                    messages.success(request, f"Registry login {data['key']} for {data['server']} saved.")
                    if not_synced:
                        messages.warning(
                            request, f"The cluster is not updated yet (the next run does it): {not_synced}"
                        )
                    return redirect("console:project_secrets", slug=slug)
        elif form.is_valid():
            service = _service_choice(project, request.POST.get("service"))
            secret_set(
                key=form.cleaned_data["key"],
                value=form.cleaned_data["value"],
                project=project,
                service=service,
                actor=request_user(request),
            )
            messages.success(request, f"Secret {form.cleaned_data['key']} saved. Its value is never shown again.")
            return redirect("console:project_secrets", slug=slug)
    entries = Secret.objects.filter(project=project).select_related("service").order_by("service__name", "key")
    services = Service.objects.filter(project=project).order_by("name")
    return render(
        request,
        "console/projects/secrets.html",
        _context(request, project, "secrets", form=form, login_form=login_form, entries=entries, services=services),
    )


@login_required
@require_POST
def project_secret_delete(request: HttpRequest, slug: str, secret_id: int) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.OWNER)
    secret = get_object_or_404(Secret.objects.select_related("project"), pk=secret_id, project=project)
    not_synced = secret_entry_delete(entry=secret, actor=request_user(request))
    messages.success(request, f"Secret {secret.key} deleted.")
    if not_synced:
        messages.warning(request, f"The cluster is not updated yet (the next run does it): {not_synced}")
    return redirect("console:project_secrets", slug=slug)


@login_required
@require_http_methods(["GET", "POST"])
def project_defaults(request: HttpRequest, slug: str) -> HttpResponse:
    """Run defaults (owners change them) and placement (shown; a superuser sets it in the admin site)."""
    project = get_project_or_404(request.user, slug)
    initial = {
        "default_resources": json.dumps(project.default_resources, indent=2) if project.default_resources else "",
        "default_timeout": project.default_timeout,
    }
    form = RunDefaultsForm(request.POST or None, initial=initial)
    if request.method == "POST":
        project = get_project_or_404(request.user, slug, Role.OWNER)
        if form.is_valid():
            try:
                project_defaults_set(project=project, actor=request_user(request), **form.cleaned_data)
            except ProjectDefaultsInvalid as exc:
                for path, message in exc.errors:
                    form.add_error(path.split(".")[0].split("[")[0], f"{path}: {message}")
            else:
                messages.success(request, "Run defaults saved; they apply to the next runs.")
                return redirect("console:project_defaults", slug=slug)
    placement = {
        "node_selector": json.dumps(project.node_selector, indent=2) if project.node_selector else "",
        "tolerations": json.dumps(project.tolerations, indent=2) if project.tolerations else "",
    }
    return render(
        request,
        "console/projects/defaults.html",
        _context(request, project, "defaults", form=form, placement=placement),
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_apikeys(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    form = ApiKeyForm(request.POST or None)
    raw_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _key, raw_key = apikey_create(
                project=project,
                name=form.cleaned_data["name"],
                created_by=request_user(request),
                role=Role(form.cleaned_data["role"]),
            )
        except ApiKeyRoleRefused as exc:
            form.add_error("role", str(exc))
        except ApiKeyCapReached as exc:
            form.add_error("name", str(exc))
        else:
            form = ApiKeyForm()
    keys = ApiKey.objects.filter(project=project).order_by("-created_at")
    response = render(
        request,
        "console/projects/apikeys.html",
        _context(request, project, "apikeys", form=form, keys=keys, raw_key=raw_key),
    )
    # The key is on this page once: never let a cache or "back" show it again.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def project_apikey_revoke(request: HttpRequest, slug: str, key_id: int) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    key = get_object_or_404(ApiKey, pk=key_id, project=project)
    apikey_revoke(key=key, actor=request_user(request))
    messages.success(request, f"API key {key.name} revoked.")
    return redirect("console:project_apikeys", slug=slug)


@login_required
@require_http_methods(["GET", "POST"])
def project_webhooks(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    form = WebhookForm(request.POST or None)
    new_secret = None
    base_url = request.build_absolute_uri("/").rstrip("/")
    if request.method == "POST" and form.is_valid():
        if Webhook.objects.filter(slug=form.cleaned_data["slug"]).exists():
            form.add_error("slug", "That slug is taken (webhook slugs are global: they are the URL).")
        else:
            try:
                with transaction.atomic():
                    _hook, new_secret = webhook_create(
                        project=project, actor=request_user(request), **form.cleaned_data
                    )
            except IntegrityError:
                form.add_error("slug", "That slug is taken.")
            else:
                form = WebhookForm()
    hooks = [
        {
            "hook": h,
            "url": webhook_url(webhook=h, base_url=base_url),
            "curl": webhook_curl_example(webhook=h, base_url=base_url),
        }
        for h in Webhook.objects.filter(project=project).order_by("slug")
    ]
    response = render(
        request,
        "console/projects/webhooks.html",
        _context(request, project, "webhooks", form=form, hooks=hooks, new_secret=new_secret),
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def project_webhook_delete(request: HttpRequest, slug: str, webhook_id: int) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.ADMIN)
    hook = get_object_or_404(Webhook, pk=webhook_id, project=project)
    webhook_delete(webhook=hook, actor=request_user(request))
    messages.success(request, f"Webhook {hook.slug} deleted.")
    return redirect("console:project_webhooks", slug=slug)


@login_required
@require_http_methods(["GET", "POST"])
def project_members(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_project_or_404(request.user, slug)
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        project = get_project_or_404(request.user, slug, Role.OWNER)
        if form.is_valid():
            try:
                member_set(
                    project=project,
                    user=form.cleaned_data["username"],
                    role=form.cleaned_data["role"],
                    actor=request_user(request),
                )
            except LastOwner as exc:
                form.add_error("role", f"Not changed: {exc}.")
            else:
                messages.success(request, f"{form.cleaned_data['username']} is now {form.cleaned_data['role']}.")
                return redirect("console:project_members", slug=slug)
    members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    return render(
        request, "console/projects/members.html", _context(request, project, "members", form=form, members=members)
    )


@login_required
@require_POST
def project_member_remove(request: HttpRequest, slug: str, member_id: int) -> HttpResponse:
    project = get_project_or_404(request.user, slug, Role.OWNER)
    membership = get_object_or_404(Membership, pk=member_id, project=project)
    try:
        member_remove(membership=membership, actor=request_user(request))
    except LastOwner:
        messages.error(request, "A project keeps at least one owner.")
    else:
        messages.success(request, f"{membership.user} removed.")
    return redirect("console:project_members", slug=slug)
