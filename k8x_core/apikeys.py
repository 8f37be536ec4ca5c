"""API keys: shown once, stored as SHA-256, scoped to one project, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from k8x_core.models import ApiKey, Project

KEY_PREFIX = "k8x_"
# last_used_at is written at most this often per key, to keep the hot path
# free of a write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def apikey_create(*, project: Project, name: str, created_by: User | None = None) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        project=project,
        name=name,
        prefix=prefix,
        key_hash=_hash(raw),
        created_by=created_by,
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


def apikey_revoke(*, key: ApiKey) -> bool:
    """Revoke; True when this call revoked it. Takes effect at once in this
    process (the console's), elsewhere within K8X_APIKEY_CACHE_SECONDS."""
    from k8x_core.ingest import api_key_cache_clear  # ingest imports this module

    revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()) == 1
    api_key_cache_clear()
    return revoked
