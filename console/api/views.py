"""The HTTP event bridge and run status API (see console/api/openapi.py).

Authentication: ``X-API-Key`` (or ``Authorization: Bearer <key>``), a run
token (``Authorization: Bearer <K8X_RUN_TOKEN>``), or a logged-in session.
The endpoints are CSRF-exempt for header credentials, which a browser never
sends by itself; a session-authenticated POST must carry the CSRF token
(``X-CSRFToken``), checked here with Django's own middleware logic.

The POST views are async: the rate limit and the wait for Kafka's
acknowledgement (up to K8X_PRODUCE_TIMEOUT_SECONDS) are awaited on the event
loop and hold no thread; a recently accepted API key is known without the
database (``ingest.sender_authenticate_cached``); other authentication goes
to Django's sync thread in one hop.
"""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import RequestDataTooBig
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import NoReverseMatch, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from console.api.openapi import openapi_document
from k8x_core.events.ce import CONTENT_TYPE_BATCH, CloudEventInvalid, ce_from_http, ce_json_parse, ce_media_type
from k8x_core.events.ingest import (
    Accepted,
    IngestRefused,
    Sender,
    event_accept_async,
    sender_authenticate,
    sender_authenticate_cached,
    sender_from_user,
    simple_event_build,
)
from k8x_core.events.webhooks import webhook_event_build, webhook_get
from k8x_core.models import TERMINAL_STATUSES, Event, Project, Run, RunStatus
from k8x_core.projects import projects_visible


def error_response(status: int, message: str, *, field: str = "", retry_after: int | None = None) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    response = JsonResponse(body, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="k8x"'
    return response


def _refused(exc: IngestRefused | CloudEventInvalid) -> JsonResponse:
    if isinstance(exc, IngestRefused):
        return error_response(exc.status, exc.message, field=exc.field, retry_after=exc.retry_after)
    return error_response(exc.status, exc.message, field=exc.field)


def _accepted(accepted: list[Accepted], *, batch: bool) -> JsonResponse:
    items = [{"id": a.id, "correlation_id": a.correlation_id} for a in accepted]
    return JsonResponse(items if batch else items[0], status=202, safe=False)


def _read_body(request: HttpRequest, *, limit: int) -> bytes:
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit=limit, size=int(declared))
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise body_too_large(limit=limit) from exc
    if len(body) > limit:
        raise body_too_large(limit=limit, size=len(body))
    return body


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> Any:
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    reason = check.process_view(request, None, (), {})  # type: ignore[arg-type]
    return reason if isinstance(reason, str) else None


def _sender_sync(request: HttpRequest) -> Sender:
    sender = sender_authenticate(
        api_key=request.headers.get("X-API-Key"), authorization=request.headers.get("Authorization")
    )
    if sender is not None:
        return sender
    # Only now: header credentials need no session lookup.
    user: AbstractBaseUser | AnonymousUser = request.user
    if not user.is_authenticated:
        raise IngestRefused(
            401,
            "authentication required: send X-API-Key, Authorization: Bearer <run token>, or log in",
            field="X-API-Key",
        )
    reason = _csrf_failure(request)
    if reason:
        raise IngestRefused(403, f"CSRF check failed for a session request: {reason}", field="X-CSRFToken")
    return sender_from_user(user=user, project_slug=request.GET.get("project") or None)


async def _sender(request: HttpRequest) -> Sender:
    # A recently accepted API key needs neither the database nor a thread.
    cached = sender_authenticate_cached(
        api_key=request.headers.get("X-API-Key"), authorization=request.headers.get("Authorization")
    )
    if cached is not None:
        return cached
    # One hop to the sync thread for all of authentication (database work).
    return await sync_to_async(_sender_sync)(request)


async def _accept(events: list[dict[str, Any]], sender: Sender, endpoint: str) -> list[Accepted]:
    # On the event loop: the rate limit and the wait for the broker hold no thread.
    return await event_accept_async(events=events, sender=sender, endpoint=endpoint)


def _max_body(batch: bool = False) -> int:
    single = int(settings.K8X_MAX_EVENT_BYTES)
    return int(settings.K8X_MAX_BATCH_BYTES) if batch else single


def body_limit(*, content_type: str | None) -> int:
    """The largest body an event endpoint reads (the batch limit for a batch,
    else the event limit); the fast path and these views both use it."""
    return _max_body(ce_media_type(content_type) == CONTENT_TYPE_BATCH)


def body_too_large(*, limit: int, size: int | None = None) -> IngestRefused:
    if size is None:
        return IngestRefused(413, f"body is over the limit of {limit} bytes", field="body")
    return IngestRefused(413, f"body is {size} bytes, over the limit of {limit} bytes", field="body")


@csrf_exempt
@require_POST
async def events(request: HttpRequest) -> HttpResponse:
    """POST /api/events: the CloudEvents HTTP binding (binary, structured, batch)."""
    return await events_for(request, None)


async def events_for(request: HttpRequest, known: Sender | None) -> HttpResponse:
    """``events`` for a sender already known (``console.api.fastpath``) or not (None)."""
    try:
        body = _read_body(request, limit=body_limit(content_type=request.content_type))
        sender = known or await _sender(request)
        headers = {k: v for k, v in request.headers.items()}
        mode, parsed = ce_from_http(headers=headers, body=body)
        accepted = await _accept(parsed, sender, "events")
    except (IngestRefused, CloudEventInvalid) as exc:
        return _refused(exc)
    return _accepted(accepted, batch=mode == "batch")


@csrf_exempt
@require_POST
async def events_simple(request: HttpRequest) -> HttpResponse:
    """POST /api/events/simple: {"event_type", "event_source", "payload", "subject"?}."""
    return await events_simple_for(request, None)


async def events_simple_for(request: HttpRequest, known: Sender | None) -> HttpResponse:
    """``events_simple`` for a sender already known or not (None)."""
    try:
        body = _read_body(request, limit=_max_body())
        sender = known or await _sender(request)
        media = (request.content_type or "").lower()
        if media != "application/json" and not media.endswith("+json"):
            raise IngestRefused(
                415, f"Content-Type must be application/json, got {media or 'none'!r}", field="content-type"
            )
        parsed = ce_json_parse(body)
        event = simple_event_build(body=parsed)
        accepted = await _accept([event], sender, "simple")
    except (IngestRefused, CloudEventInvalid) as exc:
        return _refused(exc)
    return _accepted(accepted, batch=False)


def _webhook_sync(request: HttpRequest, slug: str, body: bytes) -> tuple[dict[str, Any], Sender]:
    webhook = webhook_get(slug=slug)
    return webhook_event_build(webhook=webhook, body=body, headers=dict(request.headers.items()))


@csrf_exempt
@require_POST
async def webhook(request: HttpRequest, slug: str) -> HttpResponse:
    """POST /api/webhooks/<slug>: third-party JSON, HMAC-SHA256 signed."""
    try:
        body = _read_body(request, limit=_max_body())
        event, sender = await sync_to_async(_webhook_sync)(request, slug, body)
        accepted = await _accept([event], sender, "webhook")
    except (IngestRefused, CloudEventInvalid) as exc:
        return _refused(exc)
    return _accepted(accepted, batch=False)


# --- status ----------------------------------------------------------------------


def _viewer_projects(request: HttpRequest) -> tuple[list[int] | None, Sender | None]:
    """Project ids the caller may read (None: all), and the sender of a header
    credential (a run token reads only its own run and correlation).
    Raises IngestRefused(401)."""
    sender = sender_authenticate(
        api_key=request.headers.get("X-API-Key"), authorization=request.headers.get("Authorization")
    )
    if sender is not None:
        return list(Project.objects.filter(slug=sender.project_slug).values_list("pk", flat=True)), sender
    user = request.user
    if not user.is_authenticated:
        raise IngestRefused(401, "authentication required: send X-API-Key or log in", field="X-API-Key")
    if getattr(user, "is_superuser", False):
        return None, None
    return list(projects_visible(user=user).values_list("pk", flat=True)), None


def runs_visible_one(request: HttpRequest, run_id: uuid.UUID) -> QuerySet[Run]:
    """The run ``run_id`` as a queryset the caller may read (empty when they may not).
    A run token reads only its own run. Raises IngestRefused(401)."""
    allowed, sender = _viewer_projects(request)
    if sender is not None and sender.kind == "run" and sender.run_id != run_id:
        return Run.objects.none()
    runs = Run.objects.filter(pk=run_id)
    return runs if allowed is None else runs.filter(service__project_id__in=allowed)


def _link(name: str, *args: Any) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def run_json(run: Run) -> dict[str, Any]:
    links = {"self": f"/api/runs/{run.id}", "log": f"/api/runs/{run.id}/log"}
    if run.correlation_id:
        links["correlation"] = f"/api/correlations/{run.correlation_id}"
    console = _link("console:run_detail", run.id)
    if console:
        links["console"] = console
    return {
        "id": str(run.id),
        "service": run.service.name,
        "project": run.service.project.slug,
        "status": run.status,
        "trigger": run.trigger_kind,
        "correlation_id": run.correlation_id,
        "event_id": run.event.ce_id if run.event_id and run.event else None,
        "attempts": run.attempts,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "message": run.message,
        "job_name": run.job_name,
        "pod_name": run.pod_name,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "links": links,
    }


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.ce_id,
        "source": event.source,
        "type": event.type,
        "subject": event.subject,
        "outcome": event.outcome,
        "reason": event.reason,
        "project": event.project.slug if event.project else None,
        "received_at": _iso(event.received_at),
    }


def _flow_status(runs: list[Run]) -> str:
    if not runs:
        return "pending"
    if any(r.status not in TERMINAL_STATUSES for r in runs):
        return "running"
    if all(r.status == RunStatus.SUCCEEDED for r in runs):
        return "succeeded"
    return "failed"


@require_GET
def run_status(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """GET /api/runs/<id>."""
    try:
        run = runs_visible_one(request, run_id).select_related("service__project", "event").first()
    except IngestRefused as exc:
        return _refused(exc)
    if run is None:
        return error_response(404, f"no run {run_id} visible to you", field="id")
    return JsonResponse(run_json(run))


@require_GET
def correlation_status(request: HttpRequest, correlation_id: str) -> HttpResponse:
    """GET /api/correlations/<cid>: every run and event of one flow."""
    try:
        allowed, sender = _viewer_projects(request)
    except IngestRefused as exc:
        return _refused(exc)
    if sender is not None and sender.kind == "run" and sender.correlation_id != correlation_id:
        return error_response(404, f"no correlation {correlation_id} visible to you", field="correlation_id")
    runs_qs = Run.objects.select_related("service__project", "event").filter(correlation_id=correlation_id)
    events_qs = Event.objects.select_related("project").filter(correlation_id=correlation_id)
    if allowed is not None:
        runs_qs = runs_qs.filter(service__project_id__in=allowed)
        events_qs = events_qs.filter(Q(project_id__in=allowed))
    runs = list(runs_qs.order_by("created_at")[:500])
    found_events = list(events_qs.order_by("received_at", "id")[:500])
    return JsonResponse(
        {
            "correlation_id": correlation_id,
            "status": _flow_status(runs),
            "runs": [run_json(r) for r in runs],
            "events": [event_json(e) for e in found_events],
        }
    )


@require_GET
def openapi(request: HttpRequest) -> HttpResponse:
    """GET /api/openapi.json."""
    base = request.build_absolute_uri("/").rstrip("/")
    return JsonResponse(openapi_document(server_url=base))
