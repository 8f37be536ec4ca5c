"""Configs and secrets at three scopes: service overrides project overrides platform."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from django.db import transaction
from django.db.models import Q

from k8x_core.crypto import SecretDecryptionError
from k8x_core.models import Config, Project, Scope, ScopedEntry, Secret, Service

T = TypeVar("T", bound=ScopedEntry)

_SCOPE_ORDER = {Scope.PLATFORM: 0, Scope.PROJECT: 1, Scope.SERVICE: 2}


def _scoped_filter(*, service: Service) -> Q:
    return (
        Q(scope=Scope.PLATFORM)
        | Q(scope=Scope.PROJECT, project_id=service.project_id)
        | Q(scope=Scope.SERVICE, service_id=service.pk)
    )


def _merge(entries: Iterable[T]) -> dict[str, T]:
    """Later (narrower) scopes win."""
    merged: dict[str, T] = {}
    for entry in sorted(entries, key=lambda e: _SCOPE_ORDER[Scope(e.scope)]):
        merged[entry.key] = entry
    return merged


def configs_resolve(*, service: Service) -> dict[str, str]:
    """The service's effective configs, by key."""
    entries = Config.objects.filter(_scoped_filter(service=service))
    return {key: entry.value for key, entry in sorted(_merge(entries).items())}


def secret_keys_resolve(*, service: Service) -> list[str]:
    """Names of the service's effective secrets; values never leave the database here."""
    entries = Secret.objects.filter(_scoped_filter(service=service)).only("scope", "key")
    return sorted(_merge(entries))


class SecretUndecryptable(Exception):
    """A secret no key in K8X_SECRETS_KEY decrypts (names the key, never a value)."""

    def __init__(self, *, key: str, scope: str) -> None:
        super().__init__(
            f"secret {key!r} ({scope} scope) cannot be decrypted with any key in K8X_SECRETS_KEY; "
            "set it again, or restore the key it was encrypted with"
        )
        self.key = key


def secrets_resolve(*, service: Service) -> dict[str, str]:
    """Plain secret values, for the Kubernetes Secret sync only.

    Raises SecretUndecryptable for the first value no configured key decrypts."""
    entries = Secret.objects.filter(_scoped_filter(service=service))
    values: dict[str, str] = {}
    for key, entry in sorted(_merge(entries).items()):
        try:
            values[key] = entry.reveal()
        except SecretDecryptionError:
            raise SecretUndecryptable(key=key, scope=str(entry.scope)) from None
    return values


def _scope_of(project: Project | None, service: Service | None) -> tuple[Scope, Project | None]:
    if service is not None:
        if project is not None and service.project_id != project.pk:
            raise ValueError(f"service {service.name!r} is not in project {project.slug!r}")
        return Scope.SERVICE, service.project
    if project is not None:
        return Scope.PROJECT, project
    return Scope.PLATFORM, None


@transaction.atomic
def secret_set(*, key: str, value: str, project: Project | None = None, service: Service | None = None) -> Secret:
    scope, project = _scope_of(project, service)
    secret = Secret.objects.select_for_update().filter(scope=scope, project=project, service=service, key=key).first()
    if secret is None:
        secret = Secret(scope=scope, project=project, service=service, key=key)
    secret.set_value(value)
    secret.full_clean(exclude=["ciphertext"])
    secret.save()
    return secret


@transaction.atomic
def config_set(*, key: str, value: str, project: Project | None = None, service: Service | None = None) -> Config:
    scope, project = _scope_of(project, service)
    config, _ = Config.objects.select_for_update().get_or_create(
        scope=scope, project=project, service=service, key=key, defaults={"value": value}
    )
    if config.value != value:
        config.value = value
        config.save(update_fields=["value", "updated_at"])
    return config
