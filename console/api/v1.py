"""The management API, ``/api/v1/`` (described in console/api/openapi_v1.py).

Same credentials as the event API (``X-API-Key``, ``Authorization: Bearer
<API key>``, or a console session with ``X-CSRFToken`` for unsafe methods) and
the console's roles: ``user`` reads, runs, re-runs and cancels; ``admin``
changes services, triggers and configs; ``owner`` sets secrets. An API key has
its own role in its own project and none elsewhere. A resource of a project the
caller cannot see answers 404, never 403.

Handlers stay thin: input goes through the console's own forms (so the API and
the console cannot disagree about what is valid) and the domain functions in
k8x_core; errors are ``{"error", "field"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from console.api.views import _csrf_failure, _iso, _read_body, error_response, event_json, run_json
from console.forms import ConfigForm, RegistryLoginForm, SecretForm, ServiceForm, TriggerForm
from console.permissions import events_of_projects, role_require
from console.views.common import _parse_cursor, keyset_page
from k8x_core.audit import Actor, actor_of_api_key
from k8x_core.catalog import services as service_domain
from k8x_core.catalog.service_save import service_save_checked
from k8x_core.events.apikeys import apikey_role_in
from k8x_core.events.ingest import IngestRefused, rate_limit_take, sender_authenticate
from k8x_core.models import (
    ApiKey,
    Config,
    EventOutcome,
    Project,
    Role,
    Run,
    RunStatus,
    Scope,
    ScopedEntry,
    Secret,
    SecretKind,
    Service,
    Trigger,
    TriggerKind,
)
from k8x_core.projects import ProjectDefaultsInvalid, project_defaults_set, project_role, projects_visible
from k8x_core.runs import launch
from k8x_core.runs.configs import RegistryLoginInvalid, config_set, entry_delete, secret_set
from k8x_core.runs.registry import registry_login_save, secret_entry_delete

# A Job template or parameters schema fits easily; anything bigger is a mistake.
MAX_BODY_BYTES = 1024 * 1024
PAGE_DEFAULT = 50
PAGE_MAX = 200
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, field: str = "", retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.retry_after = retry_after


# --- who is calling ------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """A console user (session) or an API key."""

    user: User | None
    key: ApiKey | None

    def actor(self) -> Actor | User | None:
        """Who the audit log names for a change made through the API."""
        return actor_of_api_key(self.key) if self.key is not None else self.user

    def role_in(self, project: Project) -> Role | None:
        if self.key is not None:
            return apikey_role_in(key=self.key, project=project)
        assert self.user is not None
        return project_role(user=self.user, project=project)

    def projects(self) -> QuerySet[Project]:
        if self.key is not None:
            return Project.objects.filter(pk=self.key.project_id)
        assert self.user is not None
        return projects_visible(user=self.user)

    @property
    def rate_key(self) -> str:
        """Whose budget of API requests a call takes from: the key's, or the user's."""
        if self.key is not None:
            return f"api:key:{self.key.pk}"
        assert self.user is not None
        return f"api:user:{self.user.pk}"

    @property
    def person(self) -> User | None:
        """Who a run is requested by: the user, or the person who created the key."""
        return self.user if self.user is not None else (self.key.created_by if self.key else None)


def _caller(request: HttpRequest) -> Caller:
    try:
        sender = sender_authenticate(
            api_key=request.headers.get("X-API-Key"), authorization=request.headers.get("Authorization")
        )
    except IngestRefused as exc:
        raise ApiError(exc.status, exc.message, field=exc.field) from None
    if sender is not None:
        if sender.kind != "apikey" or sender.api_key_id is None:
            raise ApiError(403, "a run token cannot use the management API; use an API key", field="Authorization")
        key = (
            ApiKey.objects.select_related("project", "created_by")
            .filter(pk=sender.api_key_id, revoked_at__isnull=True)
            .first()
        )
        if key is None:
            raise ApiError(401, "API key revoked", field="X-API-Key")
        return Caller(user=None, key=key)
    user = request.user
    if not user.is_authenticated or not isinstance(user, User):
        raise ApiError(401, "authentication required: send X-API-Key or Authorization: Bearer <key>, or log in")
    if request.method not in SAFE_METHODS:
        reason = _csrf_failure(request)
        if reason:
            raise ApiError(403, f"CSRF check failed for a session request: {reason}", field="X-CSRFToken")
    return Caller(user=user, key=None)


def _project(caller: Caller, slug: str, role: Role = Role.USER) -> Project:
    """The project if the caller holds ``role`` there; 404 for a project they cannot see."""
    project = Project.objects.filter(slug=slug).first()
    try:
        if project is None:
            raise Http404
        role_require(actual=caller.role_in(project), project=project, role=role)
    except Http404:
        raise ApiError(404, f"no project {slug!r} visible to you", field="slug") from None
    except PermissionDenied as exc:
        raise ApiError(403, str(exc), field="role") from None
    return project


def _service(caller: Caller, slug: str, name: str, role: Role = Role.USER) -> Service:
    project = _project(caller, slug)
    service = Service.objects.select_related("project").filter(project=project, name=name).first()
    if service is None:
        raise ApiError(404, f"no service {name!r} in project {slug}", field="name")
    _project(caller, slug, role)
    return service


# --- plumbing --------------------------------------------------------------------------

Handler = Callable[..., HttpResponse]


def endpoint(*methods: str) -> Callable[[Handler], Callable[..., HttpResponse]]:
    """Method check, authentication, and every ApiError as JSON."""

    def wrap(view: Handler) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def inner(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error_response(
                    405, f"method {request.method} not allowed here; use {', '.join(methods)}", field="method"
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                _refuse_nul(request.path, "path")
                for name, values in request.GET.lists():
                    _refuse_nul([name, *values], name)
                caller = _caller(request)
                _rate_take(caller)
                return view(request, caller, **kwargs)
            except ApiError as exc:
                return error_response(exc.status, exc.message, field=exc.field, retry_after=exc.retry_after)

        return inner

    return wrap


def _rate_take(caller: Caller) -> None:
    try:
        rate_limit_take(key=caller.rate_key, limit=settings.K8X_API_RATE_LIMIT_PER_MINUTE, unit="requests")
    except IngestRefused as exc:
        raise ApiError(exc.status, exc.message, field=exc.field, retry_after=exc.retry_after) from None


def _body(request: HttpRequest) -> dict[str, Any]:
    media = (request.content_type or "").lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, f"Content-Type must be application/json, got {media or 'none'!r}", field="content-type")
    try:
        raw = _read_body(request, limit=MAX_BODY_BYTES)
    except IngestRefused as exc:
        raise ApiError(exc.status, exc.message, field=exc.field) from None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}", field="body") from None
    if not isinstance(value, dict):
        raise ApiError(400, "body must be a JSON object", field="body")
    _refuse_nul(value, "body")
    return value


def _refuse_nul(value: Any, where: str) -> None:
    """PostgreSQL stores no NUL character (text or jsonb): refuse it with its place, not a 500."""
    stack = [(value, where)]
    while stack:
        item, place = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ApiError(400, f"{place} contains a NUL character", field=place)
        elif isinstance(item, dict):
            stack.extend((k, place) for k in item)
            stack.extend((v, f"{k}" if place == "body" else f"{place}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, place) for v in item)


def _only(body: dict[str, Any], allowed: set[str] | list[str]) -> None:
    for name in body:
        if name not in allowed:
            raise ApiError(400, f"unknown field {name!r}; known: {', '.join(sorted(allowed))}", field=name)


def _form_error(form: forms.BaseForm) -> ApiError:
    field, messages = next(iter(form.errors.items()))
    message = str(messages[0])
    if field == "__all__":
        return ApiError(400, message)
    return ApiError(400, f"{field}: {message}", field=field)


def _no_content() -> HttpResponse:
    return HttpResponse(status=204)


# --- conversions: JSON in, form data out; rows out as JSON -----------------------------------

# How each ServiceForm field is given in JSON.
_SERVICE_KINDS: dict[str, str] = {
    "name": "str",
    "description": "str",
    "tags": "words",
    "active": "bool",
    "allow_manual_triggering": "bool",
    "image": "str",
    "command": "words",
    "args": "words",
    "resources": "object",
    "job_template": "str",
    "timeout_seconds": "int?",
    "retries": "int",
    "max_concurrency": "int?",
    "schedule": "str",
    "parameters_schema": "object",
}
_TRIGGER_KINDS: dict[str, str] = {"event_type": "str", "source_glob": "str", "cel_expression": "str", "active": "bool"}


def _form_value(field: str, kind: str, value: Any) -> str | None:
    """A JSON value as the form's text (None: leave the field out, a false checkbox)."""
    wrong = ApiError(400, f"{field} must be {_KIND_NAMES[kind]}", field=field)
    if kind == "str":
        if not isinstance(value, str):
            raise wrong
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong
        return "on" if value else None
    if kind in ("int", "int?"):
        if value is None and kind == "int?":
            return ""
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return str(value)
    if kind == "object":
        if not isinstance(value, dict):
            raise wrong
        return json.dumps(value) if value else ""
    # words: a list of strings or one string (shell words; tags: comma-separated)
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise wrong
    if field == "tags":
        if any("," in v for v in value):
            raise ApiError(400, "a tag cannot contain a comma", field=field)
        return ", ".join(value)
    return json.dumps(value)


_KIND_NAMES = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "int?": "an integer or null",
    "object": "a JSON object",
    "words": "a list of strings (or one string)",
}


def _form_data(instance: Any, kinds: dict[str, str], body: dict[str, Any]) -> dict[str, str]:
    """The form's data: the instance's current values (defaults for a new one) overlaid with the body."""
    _only(body, set(kinds))
    data: dict[str, str] = {}
    for field, kind in kinds.items():
        value = body[field] if field in body else getattr(instance, field)
        text = _form_value(field, kind, value)
        if text is not None:
            data[field] = text
    return data


def project_json(project: Project, role: Role | None) -> dict[str, Any]:
    return {
        "slug": project.slug,
        "name": project.name,
        "description": project.description,
        "namespace": project.namespace,
        "role": role,
        "created_at": _iso(project.created_at),
        "default_resources": dict(project.default_resources or {}),
        "default_timeout": project.default_timeout,
        # Placement: set by a platform superuser, read-only here.
        "node_selector": dict(project.node_selector or {}),
        "tolerations": list(project.tolerations or []),
    }


def service_json(service: Service) -> dict[str, Any]:
    base = f"/api/v1/projects/{service.project.slug}/services/{service.name}"
    return {
        "name": service.name,
        "project": service.project.slug,
        "description": service.description,
        "tags": list(service.tags or []),
        "active": service.active,
        "allow_manual_triggering": service.allow_manual_triggering,
        "image": service.image,
        "command": list(service.command or []),
        "args": list(service.args or []),
        "resources": dict(service.resources or {}),
        "job_template": service.job_template,
        "timeout_seconds": service.timeout_seconds,
        "retries": service.retries,
        "max_concurrency": service.max_concurrency,
        "schedule": service.schedule,
        "parameters_schema": dict(service.parameters_schema or {}),
        "origin": service.origin,
        "created_at": _iso(service.created_at),
        "updated_at": _iso(service.updated_at),
        "links": {"self": base, "triggers": f"{base}/triggers", "runs": f"{base}/runs"},
    }


def trigger_json(trigger: Trigger) -> dict[str, Any]:
    return {
        "id": trigger.pk,
        "event_type": trigger.event_type,
        "source_glob": trigger.source_glob,
        "cel_expression": trigger.cel_expression,
        "active": trigger.active,
        "origin": trigger.origin,
        "created_at": _iso(trigger.created_at),
        "updated_at": _iso(trigger.updated_at),
    }


def config_json(config: Config) -> dict[str, Any]:
    return {
        "key": config.key,
        "value": config.value,
        "scope": config.scope,
        "service": config.service.name if config.service else None,
        "updated_at": _iso(config.updated_at),
    }


def secret_json(secret: Secret) -> dict[str, Any]:
    """Names only: a secret's value (a registry login's username and password) never
    leaves K8X through the API; a registry login shows its server."""
    out = {
        "key": secret.key,
        "kind": secret.kind,
        "scope": secret.scope,
        "service": secret.service.name if secret.service else None,
        "updated_at": _iso(secret.updated_at),
    }
    if secret.kind == SecretKind.REGISTRY:
        out["server"] = secret.server
    return out


# --- keyset pages with an opaque cursor ------------------------------------------------------


def _page(request: HttpRequest, qs: QuerySet[Any], *, time_field: str, pk_type: type) -> tuple[list[Any], str | None]:
    """The console's ``keyset_page`` (newest first) behind an opaque ``cursor``/``next``."""
    raw_limit = request.GET.get("limit") or str(PAGE_DEFAULT)
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= PAGE_MAX:
        raise ApiError(400, f"limit must be an integer from 1 to {PAGE_MAX}", field="limit")
    query = QueryDict(mutable=True)
    cursor = request.GET.get("cursor", "")
    if cursor:
        try:
            older = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (binascii.Error, ValueError):
            older = ""
        if not older or _parse_cursor(older, pk_type) is None:
            raise ApiError(400, "cursor is not one this API gave out (use the `next` of a page)", field="cursor")
        query["older"] = older
    inner = HttpRequest()
    inner.GET = query  # type: ignore[assignment]  # keyset_page only reads it
    page = keyset_page(inner, qs, time_field=time_field, pk_type=pk_type, size=int(raw_limit))
    following = base64.urlsafe_b64encode(page.older.encode()).decode().rstrip("=") if page.older else None
    return page.items, following


def _choice(request: HttpRequest, name: str, values: list[str]) -> str:
    value = request.GET.get(name, "")
    if value and value not in values:
        raise ApiError(400, f"{name} must be one of {', '.join(values)}", field=name)
    return value


def _time(request: HttpRequest, name: str) -> datetime | None:
    raw = request.GET.get(name, "")
    if not raw:
        return None
    try:
        when = parse_datetime(raw.replace(" ", "+"))
    except ValueError:
        when = None
    if when is None:
        raise ApiError(400, f"{name} must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z", field=name)
    if when.tzinfo is None:
        raise ApiError(400, f"{name} needs a time zone, e.g. a trailing Z", field=name)
    try:
        # In UTC: PostgreSQL takes no offset over 15:59.
        return when.astimezone(UTC)
    except OverflowError:
        raise ApiError(400, f"{name} is out of range", field=name) from None


# --- projects -----------------------------------------------------------------------------


@endpoint("GET")
def projects(request: HttpRequest, caller: Caller) -> HttpResponse:
    items = [project_json(p, caller.role_in(p)) for p in caller.projects().order_by("slug")]
    return JsonResponse({"items": items})


@endpoint("GET", "PATCH")
def project(request: HttpRequest, caller: Caller, slug: str) -> HttpResponse:
    """GET: the project; PATCH (owners): its run defaults."""
    if request.method == "GET":
        found = _project(caller, slug)
        return JsonResponse(project_json(found, caller.role_in(found)))
    found = _project(caller, slug, Role.OWNER)
    body = _body(request)
    _only(body, {"default_resources", "default_timeout"})
    try:
        project_defaults_set(
            project=found,
            default_resources=body.get("default_resources", found.default_resources),
            default_timeout=body.get("default_timeout", found.default_timeout),
            actor=caller.actor(),
        )
    except ProjectDefaultsInvalid as exc:
        path, message = exc.errors[0]
        raise ApiError(400, f"{path}: {message}", field=path) from None
    return JsonResponse(project_json(found, caller.role_in(found)))


# --- services -----------------------------------------------------------------------------


def _service_save(form: ServiceForm, project: Project, caller: Caller) -> Service:
    if not form.is_valid():
        raise _form_error(form)
    service: Service = form.save(commit=False)
    service.project = project
    try:
        service_save_checked(service=service, actor=caller.actor())
    except service_domain.ServiceInvalid as exc:
        raise ApiError(400, f"refused by the cluster: {exc}", field=exc.field or "") from None
    except service_domain.ClusterUnavailable as exc:
        raise ApiError(503, f"not saved: {exc}; try again when the cluster answers", field="cluster") from None
    return service


@endpoint("GET", "POST")
def services(request: HttpRequest, caller: Caller, slug: str) -> HttpResponse:
    if request.method == "GET":
        found = _project(caller, slug)
        rows = Service.objects.select_related("project").filter(project=found).order_by("name")
        return JsonResponse({"items": [service_json(s) for s in rows]})
    found = _project(caller, slug, Role.ADMIN)
    form = ServiceForm(_form_data(Service(), _SERVICE_KINDS, _body(request)), project=found)
    service = _service_save(form, found, caller)
    return JsonResponse(service_json(service), status=201)


@endpoint("GET", "PATCH", "DELETE")
def service(request: HttpRequest, caller: Caller, slug: str, name: str) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse(service_json(_service(caller, slug, name)))
    found = _service(caller, slug, name, Role.ADMIN)
    if request.method == "DELETE":
        service_domain.service_delete(service=found, actor=caller.actor())
        return _no_content()
    form = ServiceForm(_form_data(found, _SERVICE_KINDS, _body(request)), instance=found, project=found.project)
    return JsonResponse(service_json(_service_save(form, found.project, caller)))


# --- triggers -----------------------------------------------------------------------------


def _trigger(caller: Caller, slug: str, name: str, trigger_id: str, role: Role) -> Trigger:
    svc = _service(caller, slug, name, role)
    found = None
    if trigger_id.isascii() and trigger_id.isdigit() and int(trigger_id) < 2**63:
        found = Trigger.objects.filter(pk=int(trigger_id), service=svc).first()
    if found is None:
        raise ApiError(404, f"no trigger {trigger_id} on service {name}", field="trigger_id")
    return found


def _trigger_save(form: TriggerForm, svc: Service, caller: Caller) -> Trigger:
    if not form.is_valid():
        raise _form_error(form)
    saved = form.save(commit=False)
    saved.service = svc
    return service_domain.trigger_save(trigger=saved, actor=caller.actor())


@endpoint("GET", "POST")
def triggers(request: HttpRequest, caller: Caller, slug: str, name: str) -> HttpResponse:
    if request.method == "GET":
        svc = _service(caller, slug, name)
        return JsonResponse({"items": [trigger_json(t) for t in svc.triggers.order_by("pk")]})
    svc = _service(caller, slug, name, Role.ADMIN)
    saved = _trigger_save(TriggerForm(_form_data(Trigger(), _TRIGGER_KINDS, _body(request))), svc, caller)
    return JsonResponse(trigger_json(saved), status=201)


@endpoint("GET", "PATCH", "DELETE")
def trigger(request: HttpRequest, caller: Caller, slug: str, name: str, trigger_id: str) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse(trigger_json(_trigger(caller, slug, name, trigger_id, Role.USER)))
    found = _trigger(caller, slug, name, trigger_id, Role.ADMIN)
    if request.method == "DELETE":
        service_domain.trigger_delete(trigger=found, actor=caller.actor())
        return _no_content()
    form = TriggerForm(_form_data(found, _TRIGGER_KINDS, _body(request)), instance=found)
    return JsonResponse(trigger_json(_trigger_save(form, found.service, caller)))


@endpoint("POST")
def trigger_test(request: HttpRequest, caller: Caller, slug: str, name: str) -> HttpResponse:
    """Which of the service's triggers (or a draft trigger) match a sample event.
    Admins only, as in the console: it evaluates an expression the caller chooses."""
    svc = _service(caller, slug, name, Role.ADMIN)
    body = _body(request)
    _only(body, {"event", "trigger"})
    event = body.get("event")
    if not isinstance(event, dict):
        raise ApiError(400, "event must be a JSON object (a CloudEvent in JSON form)", field="event")
    candidates: list[Trigger] = list(svc.triggers.order_by("pk"))
    if "trigger" in body:
        draft = body["trigger"]
        if not isinstance(draft, dict):
            raise ApiError(400, "trigger must be a JSON object", field="trigger")
        form = TriggerForm(_form_data(Trigger(), _TRIGGER_KINDS, draft))
        if not form.is_valid():
            error = _form_error(form)
            raise ApiError(400, f"trigger.{error.message}", field=f"trigger.{error.field}")
        candidates = [Trigger(service=svc, **form.cleaned_data)]
    results: list[dict[str, Any]] = []
    for candidate in candidates:
        try:
            matched, error_text = service_domain.trigger_matches_sample(trigger=candidate, event=event), ""
        except ValueError as exc:
            matched, error_text = False, str(exc)
        results.append(
            {"trigger": candidate.pk, "event_type": candidate.event_type, "matched": matched, "error": error_text}
        )
    return JsonResponse({"results": results})


# --- configs and secrets --------------------------------------------------------------------


def _entries(model: type[ScopedEntry], project: Project, svc: Service | None) -> QuerySet[Any]:
    rows = model.objects.filter(project=project).select_related("service")  # type: ignore[attr-defined]
    if svc is not None:
        rows = rows.filter(scope=Scope.SERVICE, service=svc)
    return rows.order_by("service__name", "key")


def _entry_delete(
    model: type[ScopedEntry], project: Project, svc: Service | None, key: str, caller: Caller
) -> HttpResponse:
    scope = Scope.SERVICE if svc is not None else Scope.PROJECT
    found = model.objects.filter(scope=scope, project=project, service=svc, key=key).first()  # type: ignore[attr-defined]
    if found is None:
        raise ApiError(404, f"no {model.__name__.lower()} {key!r} at {scope} scope", field="key")
    entry_delete(entry=found, actor=caller.actor())
    return _no_content()


def _value(request: HttpRequest) -> str:
    body = _body(request)
    _only(body, {"value"})
    value = body.get("value")
    if not isinstance(value, str):
        raise ApiError(400, "value must be a string", field="value")
    return value


def _scope_target(caller: Caller, slug: str, name: str | None, role: Role) -> tuple[Project, Service | None]:
    if name is None:
        return _project(caller, slug, role), None
    svc = _service(caller, slug, name, role)
    return svc.project, svc


@endpoint("GET")
def configs(request: HttpRequest, caller: Caller, slug: str, name: str | None = None) -> HttpResponse:
    target, svc = _scope_target(caller, slug, name, Role.USER)
    return JsonResponse({"items": [config_json(c) for c in _entries(Config, target, svc)]})


@endpoint("PUT", "DELETE")
def config(request: HttpRequest, caller: Caller, slug: str, key: str, name: str | None = None) -> HttpResponse:
    target, svc = _scope_target(caller, slug, name, Role.ADMIN)
    if request.method == "DELETE":
        return _entry_delete(Config, target, svc, key, caller)
    form = ConfigForm({"key": key, "value": _value(request)})
    if not form.is_valid():
        raise _form_error(form)
    saved = config_set(
        key=form.cleaned_data["key"],
        value=form.cleaned_data["value"],
        project=target,
        service=svc,
        actor=caller.actor(),
    )
    return JsonResponse(config_json(saved))


@endpoint("GET")
def secrets(request: HttpRequest, caller: Caller, slug: str, name: str | None = None) -> HttpResponse:
    # Names only, to every member, as the console's secrets tab shows them.
    target, svc = _scope_target(caller, slug, name, Role.USER)
    rows = _entries(Secret, target, svc).only("key", "kind", "server", "scope", "service__name", "updated_at")
    return JsonResponse({"items": [secret_json(s) for s in rows]})


@endpoint("PUT", "DELETE")
def secret(request: HttpRequest, caller: Caller, slug: str, key: str, name: str | None = None) -> HttpResponse:
    """PUT ``{"value"}``, or at project scope a registry login
    ``{"kind": "registry", "server", "username", "password"}``; DELETE."""
    target, svc = _scope_target(caller, slug, name, Role.OWNER)
    if request.method == "DELETE":
        scope = Scope.SERVICE if svc is not None else Scope.PROJECT
        entry = Secret.objects.filter(scope=scope, project=target, service=svc, key=key).first()
        if entry is None:
            raise ApiError(404, f"no secret {key!r} at {scope} scope", field="key")
        secret_entry_delete(entry=entry, actor=caller.actor())
        return _no_content()
    body = _body(request)
    if body.get("kind") == SecretKind.REGISTRY:
        return _registry_login_put(caller, target, svc, key, body)
    _only(body, {"value", "kind"})
    if body.get("kind", SecretKind.VALUE) != SecretKind.VALUE:
        raise ApiError(400, "kind must be value or registry", field="kind")
    value = body.get("value")
    if not isinstance(value, str):
        raise ApiError(400, "value must be a string", field="value")
    form = SecretForm({"key": key, "value": value})
    if not form.is_valid():
        raise _form_error(form)
    saved = secret_set(
        key=form.cleaned_data["key"],
        value=form.cleaned_data["value"],
        project=target,
        service=svc,
        actor=caller.actor(),
    )
    return JsonResponse(secret_json(saved))


def _registry_login_put(
    caller: Caller, target: Project, svc: Service | None, key: str, body: dict[str, Any]
) -> HttpResponse:
    if svc is not None:
        raise ApiError(400, "a registry login belongs to the project, not to one service", field="kind")
    _only(body, {"kind", "server", "username", "password"})
    form = RegistryLoginForm({"key": key, **{f: body.get(f) for f in ("server", "username", "password")}})
    for field in ("server", "username", "password"):
        if not isinstance(body.get(field), str):
            raise ApiError(400, f"{field} must be a string", field=field)
    if not form.is_valid():
        raise _form_error(form)
    try:
        saved, _not_synced = registry_login_save(project=target, actor=caller.actor(), **form.cleaned_data)
    except RegistryLoginInvalid as exc:
        raise ApiError(400, str(exc), field=exc.field) from None
    return JsonResponse(secret_json(saved))


# --- runs and events --------------------------------------------------------------------------


def _runs(project: Project) -> QuerySet[Run]:
    # Never the event's payload (logs are rows of their own): a list of runs stays small.
    return (
        Run.objects.filter(service__project=project).select_related("service__project", "event").defer("event__payload")
    )


def _run(caller: Caller, slug: str, run_id: str, role: Role) -> Run:
    try:
        pk = uuid.UUID(run_id)
    except ValueError:
        raise ApiError(404, f"no run {run_id!r} (a run id is a UUID)", field="run_id") from None
    found = _runs(_project(caller, slug)).filter(pk=pk).first()
    if found is None:
        raise ApiError(404, f"no run {run_id} in project {slug}", field="run_id")
    _project(caller, slug, role)
    return found


@endpoint("GET", "POST")
def service_runs(request: HttpRequest, caller: Caller, slug: str, name: str) -> HttpResponse:
    """GET: the service's runs (as ``runs`` with ``service``); POST: a manual run."""
    if request.method == "GET":
        svc = _service(caller, slug, name)
        return _run_list(request, _runs(svc.project).filter(service=svc))
    svc = _service(caller, slug, name, Role.USER)
    body = _body(request)
    _only(body, {"params"})
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise ApiError(400, "params must be a JSON object", field="params")
    try:
        created = service_domain.run_manual_create(service=svc, params=params, user=caller.person)
    except ValueError as exc:
        # Parameter errors name the parameter; the others are about the service itself.
        blamed = "service" if not svc.active or not svc.allow_manual_triggering else "params"
        raise ApiError(400, str(exc), field=blamed) from None
    return JsonResponse(run_json(_runs(svc.project).get(pk=created.pk)), status=201)


def _run_list(request: HttpRequest, rows: QuerySet[Run]) -> HttpResponse:
    status = _choice(request, "status", list(RunStatus.values))
    trigger_kind = _choice(request, "trigger", list(TriggerKind.values))
    since, until = _time(request, "since"), _time(request, "until")
    if status:
        rows = rows.filter(status=status)
    if trigger_kind:
        rows = rows.filter(trigger_kind=trigger_kind)
    if since:
        rows = rows.filter(created_at__gte=since)
    if until:
        rows = rows.filter(created_at__lte=until)
    items, following = _page(request, rows, time_field="created_at", pk_type=uuid.UUID)
    return JsonResponse({"items": [run_json(r) for r in items], "next": following})


@endpoint("GET")
def runs(request: HttpRequest, caller: Caller, slug: str) -> HttpResponse:
    found = _project(caller, slug)
    rows = _runs(found)
    service_name = request.GET.get("service", "")
    if service_name:
        svc = Service.objects.filter(project=found, name=service_name).first()
        if svc is None:
            raise ApiError(400, f"no service {service_name!r} in project {slug}", field="service")
        rows = rows.filter(service=svc)
    return _run_list(request, rows)


@endpoint("GET")
def run(request: HttpRequest, caller: Caller, slug: str, run_id: str) -> HttpResponse:
    return JsonResponse(run_json(_run(caller, slug, run_id, Role.USER)))


@endpoint("POST")
def run_cancel(request: HttpRequest, caller: Caller, slug: str, run_id: str) -> HttpResponse:
    found = _run(caller, slug, run_id, Role.USER)
    # Never waits on the cluster: a Job it cannot delete now, the watcher deletes.
    cancelled = launch.run_cancel(run_id=found.pk, user=caller.person)
    fresh = _runs(found.service.project).get(pk=found.pk)
    return JsonResponse({"cancelled": cancelled, "run": run_json(fresh)})


@endpoint("POST")
def run_rerun(request: HttpRequest, caller: Caller, slug: str, run_id: str) -> HttpResponse:
    found = _run(caller, slug, run_id, Role.USER)
    created = launch.run_rerun(run_id=found.pk, user=caller.person)
    return JsonResponse(run_json(_runs(found.service.project).get(pk=created.pk)), status=201)


@endpoint("GET")
def events(request: HttpRequest, caller: Caller, slug: str) -> HttpResponse:
    """Events sent through the project, or that ran one of its services (as the console shows them)."""
    found = _project(caller, slug)
    rows = events_of_projects(project_ids=[found.pk]).select_related("project").defer("payload")
    outcome = _choice(request, "outcome", list(EventOutcome.values))
    type_prefix = request.GET.get("type", "")
    since, until = _time(request, "since"), _time(request, "until")
    if outcome:
        rows = rows.filter(outcome=outcome)
    if type_prefix:
        rows = rows.filter(type__startswith=type_prefix)
    if since:
        rows = rows.filter(received_at__gte=since)
    if until:
        rows = rows.filter(received_at__lte=until)
    items, following = _page(request, rows, time_field="received_at", pk_type=int)
    return JsonResponse({"items": [event_json(e) for e in items], "next": following})
