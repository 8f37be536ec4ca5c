"""Configs and secrets at three scopes: service overrides project overrides platform."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q

from k8x_core.audit import Actor, audit_record
from k8x_core.crypto import SecretDecryptionError, secret_decrypt
from k8x_core.models import Config, Project, Scope, ScopedEntry, Secret, SecretKind, Service


class ScopedRow(Protocol):
    """What the scope rule needs of an entry: a model row or a launch read's record."""

    @property
    def scope(self) -> str: ...

    @property
    def key(self) -> str: ...


class SecretRow(ScopedRow, Protocol):
    @property
    def ciphertext(self) -> str: ...


class ServiceIds(Protocol):
    """A service's ids: a ``Service`` or a launch read's record."""

    @property
    def pk(self) -> Any: ...

    @property
    def project_id(self) -> int: ...


T = TypeVar("T", bound=ScopedRow)

_SCOPE_ORDER = {Scope.PLATFORM: 0, Scope.PROJECT: 1, Scope.SERVICE: 2}


def scoped_filter(*, project_id: int | None, service_id: int | None) -> Q:
    """The entries a service sees: every platform entry, its project's, its own.
    (``k8x_core.runs.launchread`` compiles this same filter into its SQL.)"""
    return (
        Q(scope=Scope.PLATFORM)
        | Q(scope=Scope.PROJECT, project_id=project_id)
        | Q(scope=Scope.SERVICE, service_id=service_id)
    )


def secret_variables_filter(*, project_id: int | None, service_id: int | None) -> Q:
    """The secrets a service's containers get as variables: those it sees (``scoped_filter``)
    except registry logins, which are the project's image pull secret, not variables.
    (``k8x_core.runs.launchread`` compiles this same filter into its SQL.)"""
    return scoped_filter(project_id=project_id, service_id=service_id) & Q(kind=SecretKind.VALUE)


def _scoped_filter(*, service: ServiceIds) -> Q:
    return scoped_filter(project_id=service.project_id, service_id=service.pk)


def _secret_variables(*, service: ServiceIds) -> Q:
    return secret_variables_filter(project_id=service.project_id, service_id=service.pk)


def scoped_merge(entries: Iterable[T]) -> dict[str, T]:
    """The scope rule, in one place: later (narrower) scopes win — service over
    project over platform."""
    merged: dict[str, T] = {}
    for entry in sorted(entries, key=lambda e: _SCOPE_ORDER[Scope(e.scope)]):
        merged[entry.key] = entry
    return merged


def configs_resolve(*, service: ServiceIds) -> dict[str, str]:
    """The service's effective configs, by key."""
    entries = Config.objects.filter(_scoped_filter(service=service))
    return {key: entry.value for key, entry in sorted(scoped_merge(entries).items())}


def secret_keys_resolve(*, service: ServiceIds) -> list[str]:
    """Names of the service's effective secrets; values never leave the database here."""
    entries = Secret.objects.filter(_secret_variables(service=service)).only("scope", "key")
    return sorted(scoped_merge(entries))


class SecretUndecryptable(Exception):
    """A secret no key in K8X_SECRETS_KEY decrypts (names the key, never a value)."""

    def __init__(self, *, key: str, scope: str) -> None:
        super().__init__(
            f"secret {key!r} ({scope} scope) cannot be decrypted with any key in K8X_SECRETS_KEY; "
            "set it again, or restore the key it was encrypted with"
        )
        self.key = key


def secrets_reveal(merged: Mapping[str, SecretRow]) -> dict[str, str]:
    """Plain values of merged secret entries, by key (sorted).

    Raises SecretUndecryptable for the first value no configured key decrypts."""
    values: dict[str, str] = {}
    for key, entry in sorted(merged.items()):
        try:
            values[key] = secret_decrypt(ciphertext=entry.ciphertext)
        except SecretDecryptionError:
            raise SecretUndecryptable(key=key, scope=str(entry.scope)) from None
    return values


def secrets_resolve(*, service: ServiceIds) -> dict[str, str]:
    """Plain secret values, for the Kubernetes Secret sync only (never registry logins).

    Raises SecretUndecryptable for the first value no configured key decrypts."""
    return secrets_reveal(scoped_merge(Secret.objects.filter(_secret_variables(service=service))))


def _scope_of(project: Project | None, service: Service | None) -> tuple[Scope, Project | None]:
    if service is not None:
        if project is not None and service.project_id != project.pk:
            raise ValueError(f"service {service.name!r} is not in project {project.slug!r}")
        return Scope.SERVICE, service.project
    if project is not None:
        return Scope.PROJECT, project
    return Scope.PLATFORM, None


# Who changes an entry: a user, an Actor (git, k8x_apply, API key), or None (K8X itself, e.g. k8x_secret).
AuditActor = Actor | AbstractBaseUser | None


def _entry_name(entry: ScopedEntry) -> str:
    """A key as people read it: ``KEY`` (project), ``service/KEY`` or ``platform/KEY``."""
    if entry.scope == Scope.SERVICE:
        return f"{entry.service.name}/{entry.key}" if entry.service is not None else entry.key
    if entry.scope == Scope.PLATFORM:
        return f"platform/{entry.key}"
    return entry.key


def _entry_state(entry: ScopedEntry) -> dict[str, object]:
    # A secret's state is its scope and name: the ciphertext is only there to
    # show that it changed (k8x_core.audit redacts it).
    state: dict[str, object] = {"scope": entry.scope, "key": entry.key, "origin": entry.origin}
    if isinstance(entry, Secret):
        # A registry login shows its server, never its username or password (in the ciphertext).
        state["kind"] = entry.kind
        if entry.server:
            state["server"] = entry.server
        state["ciphertext"] = entry.ciphertext
    elif isinstance(entry, Config):
        state["value"] = entry.value
    return state


def entry_audit(*, entry: ScopedEntry, action: str, before: dict[str, object] | None, actor: AuditActor) -> None:
    """Record a change to a config or secret (``before``: its ``_entry_state`` before, None when new)."""
    audit_record(
        project=entry.project,
        actor=actor,
        action=action,
        kind="secret" if isinstance(entry, Secret) else "config",
        name=_entry_name(entry),
        object_id=entry.pk,
        before=before,
        after=None if action == "delete" else _entry_state(entry),
    )


@transaction.atomic
def secret_set(
    *, key: str, value: str, project: Project | None = None, service: Service | None = None, actor: AuditActor = None
) -> Secret:
    scope, project = _scope_of(project, service)
    secret = Secret.objects.select_for_update().filter(scope=scope, project=project, service=service, key=key).first()
    before = _entry_state(secret) if secret is not None else None
    if secret is None:
        secret = Secret(scope=scope, project=project, service=service, key=key)
    secret.kind, secret.server = SecretKind.VALUE, ""
    secret.set_value(value)
    secret.full_clean(exclude=["ciphertext"])
    secret.save()
    entry_audit(entry=secret, action="update" if before else "create", before=before, actor=actor)
    return secret


@transaction.atomic
def entry_delete(*, entry: ScopedEntry, actor: AuditActor = None) -> None:
    """Delete a config or secret, recording it (a secret by name only)."""
    entry_audit(entry=entry, action="delete", before=_entry_state(entry), actor=actor)
    entry.delete()


@transaction.atomic
def config_set(
    *, key: str, value: str, project: Project | None = None, service: Service | None = None, actor: AuditActor = None
) -> Config:
    scope, project = _scope_of(project, service)
    config, created = Config.objects.select_for_update().get_or_create(
        scope=scope, project=project, service=service, key=key, defaults={"value": value}
    )
    if created:
        entry_audit(entry=config, action="create", before=None, actor=actor)
    elif config.value != value:
        before = _entry_state(config)
        config.value = value
        config.save(update_fields=["value", "updated_at"])
        entry_audit(entry=config, action="update", before=before, actor=actor)
    return config


# --- registry logins -------------------------------------------------------------------------

# host[:port][/path], optionally with a scheme: how docker config files name a registry.
_SERVER = re.compile(r"^(https?://)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:\d{1,5})?(/[-A-Za-z0-9._/]*)?$")


class RegistryLoginInvalid(ValueError):
    """A registry login that cannot be saved; ``field`` names the part."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RegistryLogin:
    server: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"<RegistryLogin {self.server} ******>"


def registry_login_check(*, server: str, username: str, password: str) -> None:
    """Raise RegistryLoginInvalid for a login that cannot work."""
    if not _SERVER.match(server or ""):
        raise RegistryLoginInvalid("server must be a registry host, e.g. registry.example.com:5000", field="server")
    if not username or ":" in username:
        raise RegistryLoginInvalid("username is required and cannot contain ':'", field="username")
    if not password:
        raise RegistryLoginInvalid("password is required", field="password")


@transaction.atomic
def registry_login_set(
    *, key: str, server: str, username: str, password: str, project: Project, actor: AuditActor = None
) -> Secret:
    """Save a project's login to a registry (a ``registry`` secret); audited with its server only."""
    registry_login_check(server=server, username=username, password=password)
    secret = Secret.objects.select_for_update().filter(scope=Scope.PROJECT, project=project, key=key).first()
    before = _entry_state(secret) if secret is not None else None
    if secret is None:
        secret = Secret(scope=Scope.PROJECT, project=project, key=key)
    secret.kind, secret.server = SecretKind.REGISTRY, server
    secret.set_value(json.dumps({"username": username, "password": password}))
    secret.full_clean(exclude=["ciphertext"])
    secret.save()
    entry_audit(entry=secret, action="update" if before else "create", before=before, actor=actor)
    return secret


class RegistryRow(SecretRow, Protocol):
    """A registry login entry: a ``Secret`` row or a launch read's record."""

    @property
    def server(self) -> str: ...


def registry_logins_filter(*, project_id: int | None) -> Q:
    """A project's registry logins. (``k8x_core.runs.launchread`` compiles this same
    filter into its SQL.)"""
    return Q(scope=Scope.PROJECT, project_id=project_id, kind=SecretKind.REGISTRY)


def registry_logins_reveal(entries: Iterable[RegistryRow]) -> list[RegistryLogin]:
    """Registry login entries decrypted, one per server (the first by key wins), by server.

    Raises SecretUndecryptable as ``secrets_reveal`` does."""
    out: dict[str, RegistryLogin] = {}
    for entry in sorted(entries, key=lambda e: e.key):
        try:
            data = json.loads(secret_decrypt(ciphertext=entry.ciphertext))
        except SecretDecryptionError:
            raise SecretUndecryptable(key=entry.key, scope=str(entry.scope)) from None
        out.setdefault(entry.server, RegistryLogin(entry.server, str(data["username"]), str(data["password"])))
    return [out[k] for k in sorted(out)]


def registry_logins_resolve(*, project_id: int) -> list[RegistryLogin]:
    """The project's registry logins, decrypted (for its image pull secret only), by server.

    Raises SecretUndecryptable as ``secrets_resolve`` does."""
    return registry_logins_reveal(Secret.objects.filter(registry_logins_filter(project_id=project_id)))
