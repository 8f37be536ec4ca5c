"""The audit log: ``audit_record`` is the one way a change to a project's configuration is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from k8x_core.models import ApiKey, AuditEntry, GitRepository, Project

# Fields whose values never reach the audit log, whatever the kind: secret
# values, webhook secrets, git credentials, key hashes. A change to one is
# recorded as REDACTED on both sides, so the log says *that* it changed.
REDACTED_FIELDS = frozenset(
    {
        "ciphertext",
        "secret_ciphertext",
        "deploy_private_key_encrypted",
        "https_token_encrypted",
        "key_hash",
        "token",
        "secret",
        "password",
    }
)
# Per kind, further fields that hold a secret's value.
# A notification URL's path may be its credential (a Slack webhook's is).
REDACTED_BY_KIND = {"secret": frozenset({"value"}), "notification_rule": frozenset({"url"})}
REDACTED = "<redacted>"
# Bookkeeping that changes with every write and says nothing about the change.
IGNORED_FIELDS = frozenset({"id", "created_at", "updated_at", "last_used_at", "last_synced_at"})


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user, an API key, a git sync, k8x_apply or K8X itself."""

    kind: str
    id: str = ""
    name: str = ""


ACTOR_APPLY = Actor(kind=AuditEntry.ActorKind.APPLY, name="k8x_apply")
ACTOR_SYSTEM = Actor(kind=AuditEntry.ActorKind.SYSTEM, name="system")


def actor_of_user(user: AbstractBaseUser | AnonymousUser | None) -> Actor:
    if user is None or not user.is_authenticated:
        return ACTOR_SYSTEM
    return Actor(kind=AuditEntry.ActorKind.USER, id=str(user.pk), name=user.get_username())


def actor_of_api_key(key: ApiKey) -> Actor:
    return Actor(kind=AuditEntry.ActorKind.API_KEY, id=str(key.pk), name=f"{key.name} ({key.prefix}…)")


def actor_of_git(repository: GitRepository, *, requested_by: AbstractBaseUser | None = None) -> Actor:
    who = f" (sync requested by {requested_by.get_username()})" if requested_by is not None else ""
    return Actor(kind=AuditEntry.ActorKind.GIT, id=str(repository.pk), name=f"{repository.name}{who}"[:200])


def _actor(actor: Actor | AbstractBaseUser | AnonymousUser | None) -> Actor:
    return actor if isinstance(actor, Actor) else actor_of_user(actor)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))


def audit_fields(instance: models.Model, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A row's concrete fields as JSON values (foreign keys by id), for ``before``/``after``."""
    skip = set(exclude)
    out: dict[str, Any] = {}
    for f in instance._meta.concrete_fields:
        if f.name in skip or f.name in IGNORED_FIELDS:
            continue
        out[f.attname if f.is_relation else f.name] = getattr(instance, f.attname)
    return _jsonable(out)


def audit_diff(
    *, kind: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """field -> {"old", "new"} for every field that differs; redacted fields show only that they changed."""
    redacted = REDACTED_FIELDS | REDACTED_BY_KIND.get(kind, frozenset())
    old, new = dict(before or {}), dict(after or {})
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(old) | set(new)):
        if name in IGNORED_FIELDS:
            continue
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if name in redacted:
            # Ciphertexts differ on every write: a secret written again shows as
            # changed, which is what happened, without saying to what.
            out[name] = {
                "old": REDACTED if a not in (None, "") else None,
                "new": REDACTED if b not in (None, "") else None,
            }
        else:
            out[name] = {"old": _jsonable(a), "new": _jsonable(b)}
    return out


def audit_record(
    *,
    project: Project | None,
    actor: Actor | AbstractBaseUser | AnonymousUser | None,
    action: str,
    kind: str,
    name: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    object_id: Any = "",
) -> AuditEntry | None:
    """Record one change (``action`` create, update or delete of ``kind`` ``name``).

    ``before``/``after`` are the object's fields (None on the side where it did
    not exist). An update that changed nothing records nothing (None)."""
    if action not in AuditEntry.Action.values:
        raise ValueError(f"audit action must be one of {', '.join(AuditEntry.Action.values)}, not {action!r}")
    changes = audit_diff(kind=kind, before=before, after=after)
    if action == AuditEntry.Action.UPDATE and not changes:
        return None
    who = _actor(actor)
    return AuditEntry.objects.create(
        project=project,
        actor_kind=who.kind,
        actor_id=who.id[:64],
        actor_name=who.name[:200],
        action=action,
        kind=kind[:30],
        object_name=str(name)[:300],
        object_id=str(object_id or "")[:64],
        changes=changes,
    )
