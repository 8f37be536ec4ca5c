"""A lean ASGI path for the event bridge's hot request: ``POST /api/events``
(and ``/api/events/simple``) with an API key this process accepted in the last
K8X_APIKEY_CACHE_SECONDS (``ingest.sender_authenticate_cached``).

Why: under ASGI, Django runs every sync-style middleware hook through
``sync_to_async(thread_sensitive=True)``, and each request gets its own
executor thread (``ThreadSensitiveContext``), started and joined per request.
With the default middleware that is ~15 thread hand-offs per event, and the
sync-only WhiteNoise middleware wraps the rest of the chain in one more
thread round trip. Measured on 2 cores, 16 clients, API key cached: driving
the ASGI app in-process, 1.9-2.2 ms CPU per event and ~300 events/s through
Django's chain against 0.3 ms and ~2,300 events/s here; under daphne (with
bench/bench_bridge.py) 2.8 ms vs 0.6-0.8 ms of server CPU per event.

What the fast path keeps, so a response is the same as Django's:
- the same view code (``views.events_for`` / ``views.events_simple_for``);
- the hooks that act on such a request, called inline (they do no I/O):
  SecurityMiddleware (SSL redirect, nosniff, referrer, COOP, HSTS),
  CommonMiddleware (ALLOWED_HOSTS via get_host, disallowed user agents,
  Content-Length), XFrameOptionsMiddleware;
- Django's exception-to-response handling.
What it leaves out, because it has no effect on a CSRF-exempt POST whose view
reads neither the session nor the user: the session, CSRF, authentication,
messages and WhiteNoise middleware, and the request_started/finished signals
(their receivers manage database connections; this path opens none).
Any other middleware in MIDDLEWARE switches the fast path off, and every
request it does not take (no or unknown credential, a run token, a session,
other paths) goes to Django unchanged.

Wiring (k8x/asgi.py): ``"http": bridge_asgi(django_asgi_app)``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.module_loading import import_string

from console.api import views
from k8x_core.events.ingest import IngestRefused, Sender, sender_authenticate_cached

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: Django, Channels and servers each type scope and messages differently.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
View = Callable[[HttpRequest, Sender | None], Awaitable[HttpResponse]]

# Run inline, in MIDDLEWARE order: pure request/response hooks.
INLINE_MIDDLEWARE = frozenset(
    {
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    }
)
# No effect on a header-authenticated, CSRF-exempt POST that reads neither
# request.session nor request.user (and is not a static file).
SKIPPED_MIDDLEWARE = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    }
)


def _no_response(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    raise AssertionError("the fast path calls the middleware hooks itself")


class _Plan:
    """What the fast path does under the current settings."""

    def __init__(self, middleware: tuple[str, ...]) -> None:
        self.middleware = middleware
        unknown = [m for m in middleware if m not in INLINE_MIDDLEWARE | SKIPPED_MIDDLEWARE]
        self.enabled = not unknown and bool(settings.K8X_BRIDGE_FAST_PATH)
        if unknown:
            logger.info("event bridge fast path off: middleware %s not known to be safe to skip", unknown)
        self.hooks = [import_string(m)(_no_response) for m in middleware if m in INLINE_MIDDLEWARE]
        self.routes: dict[str, View] = {
            reverse("api:events"): views.events_for,
            reverse("api:events_simple"): views.events_simple_for,
        }


def _cached_sender(scope: Scope) -> Sender | None:
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers", ()):
        if name in (b"x-api-key", b"authorization"):
            if name in found:
                return None  # Django joins repeated headers; let it decide
            found[name] = value.decode("latin1")
    return sender_authenticate_cached(api_key=found.get(b"x-api-key"), authorization=found.get(b"authorization"))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin1"))
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for Django after the fast path has read the body."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_response(response: HttpResponse, send: Send) -> None:
    headers = [(k.encode("ascii"), v.encode("latin1")) for k, v in response.items()]
    headers += [(b"Set-Cookie", c.output(header="").encode("ascii").strip()) for c in response.cookies.values()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content, "more_body": False})


class BridgeFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._plan: _Plan | None = None

    def plan(self) -> _Plan:
        middleware = tuple(settings.MIDDLEWARE)
        if self._plan is None or self._plan.middleware != middleware:
            self._plan = _Plan(middleware)
        return self._plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        plan = self.plan()
        view = plan.routes.get(scope["path"]) if plan.enabled else None
        sender = _cached_sender(scope) if view else None
        if view is None or sender is None:
            return await self.app(scope, receive, send)
        # The views' limit, enforced while reading: a body over it is never
        # buffered whole (a declared length over it is not read at all).
        limit = views.body_limit(content_type=_header(scope, b"content-type"))
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return await self._too_large(scope, send, views.body_too_large(limit=limit, size=int(declared)))
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # the client left before sending its event: nothing to do
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await self._too_large(scope, send, views.body_too_large(limit=limit))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            request = ASGIRequest(scope, BytesIO(body))
        except Exception:  # malformed request line or headers: Django's answer, as always
            return await self.app(scope, _replay(body, receive), send)
        response = await self._respond(plan, view, request, sender)
        await _send_response(response, send)
        return None

    async def _too_large(self, scope: Scope, send: Send, refused: IngestRefused) -> None:
        async def answer(_request: HttpRequest, _sender: Sender | None) -> HttpResponse:
            return views.error_response(refused.status, refused.message, field=refused.field)

        try:
            request = ASGIRequest(scope, BytesIO(b""))
        except Exception:  # malformed request line or headers: the bare answer
            return await _send_response(await answer(HttpRequest(), None), send)
        await _send_response(await self._respond(self.plan(), answer, request, None), send)
        return None

    async def _respond(self, plan: _Plan, view: View, request: HttpRequest, sender: Sender | None) -> HttpResponse:
        ran = 0
        response: HttpResponse | None = None
        for hook in plan.hooks:
            ran += 1
            process_request = getattr(hook, "process_request", None)
            if process_request is None:
                continue
            try:
                response = process_request(request)
            except Exception as exc:
                response = response_for_exception(request, exc)
            if response is not None:
                break
        if response is None:
            try:
                response = await view(request, sender)
            except Exception as exc:
                response = response_for_exception(request, exc)
        for hook in reversed(plan.hooks[:ran]):
            process_response = getattr(hook, "process_response", None)
            if process_response is not None:
                try:
                    response = process_response(request, response)
                except Exception as exc:
                    response = response_for_exception(request, exc)
        return response


def bridge_asgi(app: ASGIApp) -> BridgeFastPath:
    """Wrap Django's ASGI application (http) with the event bridge's fast path."""
    return BridgeFastPath(app)
