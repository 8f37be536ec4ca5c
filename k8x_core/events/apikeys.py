"""API keys: shown once, stored as SHA-256, scoped to one project, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.utils import timezone

from k8x_core.audit import Actor, audit_record
from k8x_core.models import ROLE_RANK, ApiKey, Project, Role
from k8x_core.projects import project_role

KEY_PREFIX = "k8x_"
# last_used_at is written at most this often per key, to keep the hot path
# free of a write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKeyCapReached(ValueError):
    """The project holds as many active API keys as K8X_MAX_API_KEYS_PER_PROJECT allows."""


class ApiKeyRoleRefused(ValueError):
    """A key with more rights than its creator has in the project."""


def apikey_create(
    *, project: Project, name: str, created_by: User | None = None, role: Role = Role.USER
) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored.

    A person (``created_by``) can only create keys up to their own role in the
    project; without one (``manage.py k8x_apikey``, run by the operator) any role.
    Raises ApiKeyCapReached when the project has its maximum of active keys."""
    role = Role(role)
    if created_by is not None:
        own = project_role(user=created_by, project=project)
        if own is None or ROLE_RANK[own] < ROLE_RANK[role]:
            raise ApiKeyRoleRefused(
                f"you are {own or 'not a member'} in project {project.slug}; a key cannot have the {role} role"
            )
    cap = int(settings.K8X_MAX_API_KEYS_PER_PROJECT)
    if ApiKey.objects.filter(project=project, revoked_at__isnull=True).count() >= cap:
        raise ApiKeyCapReached(
            f"project {project.slug} already has {cap} active API keys (K8X_MAX_API_KEYS_PER_PROJECT); revoke one first"
        )
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            project=project,
            name=name,
            prefix=prefix,
            key_hash=_hash(raw),
            role=role,
            created_by=created_by,
        )
        audit_record(
            project=project,
            actor=created_by,
            action="create",
            kind="api_key",
            name=name,
            object_id=key.pk,
            before=None,
            after={"name": name, "prefix": prefix, "role": str(role)},
        )
    return key, raw


def apikey_authenticate(*, raw: str) -> ApiKey | None:
    """The active key matching ``raw``, or None (unknown, malformed or revoked)."""
    if not raw.startswith(KEY_PREFIX) or raw.count("_") < 2:
        return None
    prefix = raw[len(KEY_PREFIX) :].split("_", 1)[0]
    digest = _hash(raw)
    for key in ApiKey.objects.select_related("project").filter(prefix=prefix, revoked_at__isnull=True):
        if hmac.compare_digest(key.key_hash, digest):
            now = timezone.now()
            if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
                ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
                key.last_used_at = now
            return key
    return None


def apikey_role_in(*, key: ApiKey, project: Project) -> Role | None:
    """The key's role in ``project``: its own role in its own project, none elsewhere."""
    return Role(key.role) if key.project_id == project.pk else None


def apikey_revoke(*, key: ApiKey, actor: Actor | AbstractBaseUser | None = None) -> bool:
    """Revoke; True when this call revoked it. Takes effect at once in this
    process (the console's), elsewhere within K8X_APIKEY_CACHE_SECONDS."""
    now = timezone.now()
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now) == 1
        if revoked:
            audit_record(
                project=key.project,
                actor=actor,
                action="update",
                kind="api_key",
                name=key.name,
                object_id=key.pk,
                before={"revoked_at": None},
                after={"revoked_at": now},
            )
    apikey_cache_clear()
    return revoked


# Accepted API keys, by SHA-256 of the raw key: digest -> (identity, expires at,
# monotonic). Under ASGI every request gets a fresh thread and thereby a fresh
# PostgreSQL connection (Django's connections are per request context), so a
# database lookup per event costs a whole connection set-up (~5 ms CPU here,
# tens of ms wall); a cached key needs no database and no thread hop at all.
# The price: a revoked or deleted key keeps working in other processes for up to
# K8X_APIKEY_CACHE_SECONDS (0 disables the cache). Only successes are cached, so
# a new key works at once and a wrong one is always looked up.
@dataclass(frozen=True)
class ApiKeyIdentity:
    key_id: int
    prefix: str
    project_slug: str


_cache: dict[str, tuple[ApiKeyIdentity, float]] = {}
_CACHE_MAX = 10_000


def apikey_cache_get(*, raw: str) -> ApiKeyIdentity | None:
    """The key accepted less than K8X_APIKEY_CACHE_SECONDS ago in this process, or None."""
    entry = _cache.get(_hash(raw))
    if entry is None or entry[1] <= time.monotonic():
        return None
    return entry[0]


def apikey_cache_clear() -> None:
    _cache.clear()


def apikey_identify(*, raw: str) -> ApiKeyIdentity | None:
    """``apikey_authenticate``, remembered for K8X_APIKEY_CACHE_SECONDS when it succeeds."""
    digest = _hash(raw)
    key = apikey_authenticate(raw=raw)
    if key is None:
        _cache.pop(digest, None)
        return None
    identity = ApiKeyIdentity(key_id=key.pk, prefix=key.prefix, project_slug=key.project.slug)
    ttl = float(settings.K8X_APIKEY_CACHE_SECONDS)
    if ttl > 0:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[digest] = (identity, time.monotonic() + ttl)
    return identity


def apikey_is_revoked(*, raw: str) -> bool:
    return ApiKey.objects.filter(key_hash=_hash(raw), revoked_at__isnull=False).exists()
