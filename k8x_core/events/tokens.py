"""Run tokens: what a running container (``K8X_RUN_TOKEN``) presents as
``Authorization: Bearer <token>`` to emit follow-up events.

A token is a signed, timestamped claim (Django signing with SECRET_KEY and a
salt of its own), so verifying it needs no database: the events it sends are
scoped to the run's project and carry the run's correlation id. It expires
after ``ttl_seconds`` (default K8X_RUN_TOKEN_TTL_SECONDS).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

RUN_TOKEN_SALT = "k8x.run-token"  # noqa: S105  (a namespace for signatures, not a secret)
RUN_TOKEN_PREFIX = "k8xrun."  # noqa: S105


@dataclass(frozen=True)
class RunTokenClaims:
    run_id: uuid.UUID
    project_slug: str
    correlation_id: str


def run_token_issue(
    *,
    run_id: uuid.UUID | str,
    project_slug: str,
    correlation_id: str,
    ttl_seconds: int | None = None,
) -> str:
    """A token for this run. ``ttl_seconds`` is stored in it, so each token
    keeps the lifetime it was issued with."""
    ttl = settings.K8X_RUN_TOKEN_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    payload = {"r": uuid.UUID(str(run_id)).hex, "p": project_slug, "c": correlation_id, "t": int(ttl)}
    return RUN_TOKEN_PREFIX + signing.dumps(payload, salt=RUN_TOKEN_SALT, compress=True)


def run_token_verify(*, token: str) -> RunTokenClaims | None:
    """The claims of a valid, unexpired token, else None."""
    if not token.startswith(RUN_TOKEN_PREFIX):
        return None
    raw = token[len(RUN_TOKEN_PREFIX) :]
    try:
        # First check the signature without an age limit to read the ttl the
        # token was issued with, then check the age against that ttl.
        payload = signing.loads(raw, salt=RUN_TOKEN_SALT)
        ttl = int(payload["t"])
        signing.loads(raw, salt=RUN_TOKEN_SALT, max_age=ttl)
        return RunTokenClaims(
            run_id=uuid.UUID(payload["r"]),
            project_slug=str(payload["p"]),
            correlation_id=str(payload["c"]),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
