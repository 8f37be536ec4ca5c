"""Event ingestion: who is sending (API key, run token, session), what scope
their events get, the per-sender rate limit, and putting events on Kafka.

Scope rules (documented in the README):

- An API key belongs to one project: its events carry ``k8xproject=<slug>``
  and may only trigger that project's services.
- A run token (``Authorization: Bearer``, the ``K8X_RUN_TOKEN`` of a running
  container) scopes its events to the run's project and gives events without
  a ``correlationid`` the run's correlation id.
- A logged-in session (the console's "send test event"; CSRF token required)
  sends for ``?project=<slug>`` where the user is a member; without a
  project, a staff user or superuser sends platform-wide (no ``k8xproject``,
  any service may match), and a member of exactly one project sends for it.
- Webhooks are scoped to the webhook's project (``k8x_core.events.webhooks``).

Client-sent ``k8x*`` extensions are always stripped (``ce.ce_scope``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from k8x_core.events.apikeys import ApiKeyIdentity, apikey_cache_get, apikey_identify, apikey_is_revoked
from k8x_core.events.ce import (
    CloudEventInvalid,
    ce_correlation_id,
    ce_new,
    ce_scope,
    ce_size,
)
from k8x_core.events.reserved import TRUSTED_SENDER_KINDS, source_reserved_problem
from k8x_core.events.tokens import RunTokenClaims, run_token_verify
from k8x_core.kafka import KafkaMessageRejected, KafkaUnavailable, kafka_produce_events
from k8x_core.kafka.producer import kafka_produce_events_async
from k8x_core.metrics import BRIDGE_EVENTS, redis_client
from k8x_core.models import TERMINAL_STATUSES, Membership, Project, Run
from k8x_core.projects import project_role

logger = logging.getLogger(__name__)


class IngestRefused(Exception):
    """An event (or request) that is refused, with the HTTP answer."""

    def __init__(self, status: int, message: str, *, field: str = "", retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.retry_after = retry_after


@dataclass(frozen=True)
class Sender:
    """Who sends: decides the events' project scope and the rate-limit bucket."""

    kind: str  # "apikey" | "run" | "session" | "webhook" | "cli" | "scheduler"
    project_slug: str | None
    rate_key: str
    correlation_id: str = ""
    api_key_id: int | None = None
    run_id: uuid.UUID | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class Accepted:
    id: str
    correlation_id: str


# --- who is sending --------------------------------------------------------------


def _sender_of(identity: ApiKeyIdentity) -> Sender:
    return Sender(
        kind="apikey",
        project_slug=identity.project_slug,
        rate_key=f"apikey:{identity.prefix}",
        api_key_id=identity.key_id,
    )


def sender_from_api_key_cached(*, raw: str) -> Sender | None:
    """The sender of an API key accepted less than K8X_APIKEY_CACHE_SECONDS
    ago in this process, or None (look it up with ``sender_from_api_key``)."""
    identity = apikey_cache_get(raw=raw)
    return None if identity is None else _sender_of(identity)


def sender_from_api_key(*, raw: str) -> Sender:
    identity = apikey_identify(raw=raw)
    if identity is None:
        revoked = apikey_is_revoked(raw=raw)
        raise IngestRefused(401, "API key revoked" if revoked else "unknown API key", field="X-API-Key")
    return _sender_of(identity)


def sender_authenticate_cached(*, api_key: str | None, authorization: str | None) -> Sender | None:
    """``sender_authenticate`` without the database, when the credential is an
    API key accepted recently (see above); None means "look it up"."""
    if api_key:
        return sender_from_api_key_cached(raw=api_key.strip())
    if authorization:
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential.startswith("k8x_"):
            return sender_from_api_key_cached(raw=credential)
    return None


def sender_from_run_token(*, token: str) -> Sender:
    claims: RunTokenClaims | None = run_token_verify(token=token)
    if claims is None:
        raise IngestRefused(401, "run token invalid or expired", field="Authorization")
    # One primary-key query per request (the run and its project's slug), no
    # cache: a token stops working the moment its run ends, and a hostile
    # container cannot keep sending for its project after its run.
    found = Run.objects.filter(pk=claims.run_id).values_list("status", "service__project__slug").first()
    if found is None or found[1] != claims.project_slug:
        raise IngestRefused(401, "run token's run no longer exists", field="Authorization")
    if found[0] in TERMINAL_STATUSES:
        raise IngestRefused(401, f"run token's run has ended ({found[0]})", field="Authorization")
    return Sender(
        kind="run",
        project_slug=claims.project_slug,
        rate_key=f"run:{claims.run_id.hex}",
        correlation_id=claims.correlation_id,
        run_id=claims.run_id,
    )


def sender_from_user(*, user: AbstractBaseUser | AnonymousUser, project_slug: str | None) -> Sender:
    if not user.is_authenticated:
        raise IngestRefused(401, "authentication required", field="X-API-Key")
    rate_key = f"user:{user.pk}"
    if project_slug:
        project = Project.objects.filter(slug=project_slug).first()
        if project is None or project_role(user=user, project=project) is None:
            raise IngestRefused(403, f"you are not a member of project {project_slug!r}", field="project")
        return Sender(kind="session", project_slug=project.slug, rate_key=rate_key, user_id=user.pk)
    if getattr(user, "is_staff", False) or getattr(user, "is_superuser", False):
        return Sender(kind="session", project_slug=None, rate_key=rate_key, user_id=user.pk)
    slugs = list(Membership.objects.filter(user_id=user.pk).values_list("project__slug", flat=True)[:2])
    if len(slugs) == 1:
        return Sender(kind="session", project_slug=slugs[0], rate_key=rate_key, user_id=user.pk)
    raise IngestRefused(
        400 if slugs else 403,
        "name the project to send for with ?project=<slug>" if slugs else "you are not a member of any project",
        field="project",
    )


def sender_authenticate(
    *,
    api_key: str | None,
    authorization: str | None,
) -> Sender | None:
    """The sender named by an ``X-API-Key`` or ``Authorization: Bearer``
    header (a run token or an API key), None when neither is present.
    Raises IngestRefused(401) for a credential that is wrong."""
    if api_key:
        return sender_from_api_key(raw=api_key.strip())
    if authorization:
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise IngestRefused(401, "Authorization must be 'Bearer <token>'", field="Authorization")
        if credential.startswith("k8x_"):
            return sender_from_api_key(raw=credential)
        return sender_from_run_token(token=credential)
    return None


# --- rate limit ------------------------------------------------------------------


def _rate_window(*, key: str, limit: int | None, now: float | None) -> tuple[int, float, str]:
    per_minute = int(settings.K8X_RATE_LIMIT_PER_MINUTE if limit is None else limit)
    now = time.time() if now is None else now
    return per_minute, now, f"k8x:rate:{key}:{int(now // 60)}"


def _rate_refused(*, per_minute: int, now: float, unit: str = "events") -> IngestRefused:
    retry_after = max(1, math.ceil(60 - (now % 60)))
    return IngestRefused(
        429, f"rate limit of {per_minute} {unit} per minute exceeded", field="rate", retry_after=retry_after
    )


def rate_limit_take(
    *, key: str, count: int = 1, limit: int | None = None, now: float | None = None, unit: str = "events"
) -> None:
    """Take ``count`` from the sender's budget for the current minute (a fixed
    window in Redis), or raise IngestRefused(429) with the seconds until the
    next window. With Redis unreachable the limit is not enforced (logged):
    refusing every event because the limiter is down would be worse."""
    per_minute, now, redis_key = _rate_window(key=key, limit=limit, now=now)
    if per_minute <= 0:
        return
    try:
        pipe = redis_client().pipeline()
        pipe.incrby(redis_key, count)
        pipe.expire(redis_key, 120)
        used = int(pipe.execute()[0])
        if used > per_minute:
            # A refused request does not use up the budget.
            redis_client().decrby(redis_key, count)
    except RedisError:
        logger.warning("rate limit not enforced: Redis unreachable", exc_info=True)
        return
    if used > per_minute:
        raise _rate_refused(per_minute=per_minute, now=now, unit=unit)


# One asyncio Redis client per event loop (its connections belong to the loop
# that opened them): one for the ASGI server's loop, a short-lived one for
# each loop asgiref makes for a sync caller (tests).
_async_redis_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncRedis] = weakref.WeakKeyDictionary()


def _async_redis() -> AsyncRedis:
    loop = asyncio.get_running_loop()
    client = _async_redis_clients.get(loop)
    if client is None:
        client = AsyncRedis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        _async_redis_clients[loop] = client
    return client


async def rate_limit_take_async(
    *, key: str, count: int = 1, limit: int | None = None, now: float | None = None
) -> None:
    """``rate_limit_take`` for the event loop (same window, same rules)."""
    per_minute, now, redis_key = _rate_window(key=key, limit=limit, now=now)
    if per_minute <= 0:
        return
    try:
        client = _async_redis()
        async with client.pipeline() as pipe:
            pipe.incrby(redis_key, count)
            pipe.expire(redis_key, 120)
            used = int((await pipe.execute())[0])
        if used > per_minute:
            await client.decrby(redis_key, count)
    except (RedisError, OSError, TimeoutError):
        logger.warning("rate limit not enforced: Redis unreachable", exc_info=True)
        return
    if used > per_minute:
        raise _rate_refused(per_minute=per_minute, now=now)


# --- accepting -------------------------------------------------------------------


def simple_event_build(*, body: Any) -> dict[str, Any]:
    """The structured event for the simple form ``{"event_type",
    "event_source", "payload", "subject"?}``; K8X fills id, time and
    specversion."""
    if not isinstance(body, Mapping):
        raise IngestRefused(400, "the body must be a JSON object", field="body")
    allowed = {"event_type", "event_source", "payload", "subject"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise IngestRefused(
            400, f"unknown field {unknown[0]!r}: expected event_type, event_source, payload, subject", field=unknown[0]
        )
    for name in ("event_type", "event_source"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise IngestRefused(400, f"field {name!r} is required and must be a non-empty string", field=name)
    subject = body.get("subject")
    if subject is not None and (not isinstance(subject, str) or not subject):
        raise IngestRefused(400, "field 'subject' must be a non-empty string when present", field="subject")
    try:
        return ce_new(type=body["event_type"], source=body["event_source"], data=body.get("payload"), subject=subject)
    except CloudEventInvalid as exc:
        raise IngestRefused(400, exc.message, field=exc.field) from exc


def events_prepare(*, events: Sequence[Mapping[str, Any]], sender: Sender) -> list[dict[str, Any]]:
    """The events as they go on Kafka (scoped, with a correlation id), each
    checked against the size limit."""
    prepared = []
    limit = settings.K8X_MAX_EVENT_BYTES
    for index, event in enumerate(events):
        reserved = None if sender.kind in TRUSTED_SENDER_KINDS else source_reserved_problem(source=event.get("source"))
        if reserved:
            raise IngestRefused(400, f"event [{index}]: {reserved}" if len(events) > 1 else reserved, field="source")
        scoped = ce_scope(event, project_slug=sender.project_slug, correlation_id=sender.correlation_id)
        size = ce_size(scoped)
        if size > limit:
            where = f"event [{index}] " if len(events) > 1 else "event "
            raise IngestRefused(413, f"{where}is {size} bytes, over the limit of {limit} bytes", field="size")
        prepared.append(scoped)
    return prepared


def _produce_refused(exc: KafkaMessageRejected | KafkaUnavailable) -> IngestRefused:
    if isinstance(exc, KafkaMessageRejected):
        return IngestRefused(413, str(exc), field="size")
    retry_after = max(1, math.ceil(settings.K8X_PRODUCE_TIMEOUT_SECONDS))
    return IngestRefused(
        503, f"event store unavailable, nothing was accepted; retry later ({exc})", retry_after=retry_after
    )


def _accepted(prepared: list[dict[str, Any]], endpoint: str) -> list[Accepted]:
    BRIDGE_EVENTS.labels(endpoint=endpoint).inc(len(prepared))
    return [Accepted(id=str(e["id"]), correlation_id=ce_correlation_id(e)) for e in prepared]


def event_accept(
    *,
    events: Sequence[Mapping[str, Any]],
    sender: Sender,
    endpoint: str = "events",
    topic: str | None = None,
) -> list[Accepted]:
    """Put validated events on Kafka for ``sender``; all or nothing from the
    caller's view: returns only once the broker acknowledged every one.

    No database access (the web layer runs this off its main thread)."""
    prepared = events_prepare(events=events, sender=sender)
    if sender.rate_key:
        rate_limit_take(key=sender.rate_key, count=len(prepared))
    try:
        kafka_produce_events(prepared, topic=topic)
    except (KafkaMessageRejected, KafkaUnavailable) as exc:
        raise _produce_refused(exc) from exc
    return _accepted(prepared, endpoint)


async def event_accept_async(
    *,
    events: Sequence[Mapping[str, Any]],
    sender: Sender,
    endpoint: str = "events",
    topic: str | None = None,
) -> list[Accepted]:
    """``event_accept`` on the event loop: the rate limit and the wait for the
    broker's acknowledgement hold no thread (the web bridge's hot path)."""
    prepared = events_prepare(events=events, sender=sender)
    if sender.rate_key:
        await rate_limit_take_async(key=sender.rate_key, count=len(prepared))
    try:
        await kafka_produce_events_async(prepared, topic=topic)
    except (KafkaMessageRejected, KafkaUnavailable) as exc:
        raise _produce_refused(exc) from exc
    return _accepted(prepared, endpoint)
