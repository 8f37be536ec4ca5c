"""System checks: invariants of the settings, refused before any process starts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from k8x_core.crypto import key_is_valid
from k8x_core.kubevalues import tolerations_errors


@register("k8x")
def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    keys = list(settings.K8X_SECRETS_KEY)
    if not keys:
        errors.append(Error("K8X_SECRETS_KEY is empty.", hint="Set one or more Fernet keys.", id="k8x.E001"))
    for index, key in enumerate(keys):
        if not key_is_valid(key):
            errors.append(
                Error(
                    f"K8X_SECRETS_KEY entry {index + 1} is not a valid Fernet key.",
                    hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'",
                    id="k8x.E002",
                )
            )
    if not settings.DEBUG:
        if settings.SECRET_KEY == settings.INSECURE_SECRET_KEY:
            errors.append(
                Error(
                    "SECRET_KEY is the insecure development default while DEBUG is off.",
                    hint="Set SECRET_KEY in the environment (make up generates one under .state/).",
                    id="k8x.E003",
                )
            )
        if settings.INSECURE_SECRETS_KEY in keys:
            errors.append(
                Error(
                    "K8X_SECRETS_KEY contains the public development key while DEBUG is off.",
                    hint="Set K8X_SECRETS_KEY to a key of your own (make up generates one under .state/).",
                    id="k8x.E004",
                )
            )
        if "*" in settings.ALLOWED_HOSTS:
            errors.append(Error("ALLOWED_HOSTS contains '*' while DEBUG is off.", id="k8x.E005"))
    if settings.K8X_EVENTS_TOPIC == settings.K8X_DLQ_TOPIC:
        errors.append(Error("K8X_EVENTS_TOPIC and K8X_DLQ_TOPIC must differ.", id="k8x.E006"))
    for name in (
        "K8X_LOG_CAP_BYTES",
        "K8X_MAX_EVENT_BYTES",
        "K8X_MAX_BATCH_EVENTS",
        "K8X_RATE_LIMIT_PER_MINUTE",
        "K8X_RUN_TOKEN_TTL_SECONDS",
        "K8X_RECONCILE_AFTER_SECONDS",
    ):
        if getattr(settings, name) <= 0:
            errors.append(Error(f"{name} must be a positive number.", id="k8x.E007"))
    if settings.K8X_API_RATE_LIMIT_PER_MINUTE < 0:
        errors.append(Error("K8X_API_RATE_LIMIT_PER_MINUTE must be 0 (no limit) or positive.", id="k8x.E007"))
    if settings.K8X_LOG_LINE_MAX_BYTES < 1024:
        # Room for the timestamp, a container name and the continuation marks.
        errors.append(Error("K8X_LOG_LINE_MAX_BYTES must be at least 1024.", id="k8x.E007"))
    if settings.K8X_PRODUCE_TIMEOUT_SECONDS <= 0:
        errors.append(Error("K8X_PRODUCE_TIMEOUT_SECONDS must be positive.", id="k8x.E007"))
    if int(settings.K8X_LAUNCH_THREADS) < 1:
        errors.append(Error("K8X_LAUNCH_THREADS must be at least 1.", id="k8x.E010"))
    if len(settings.K8X_NAMESPACE) > 22:
        errors.append(
            Error("K8X_NAMESPACE is longer than 22 characters: project namespaces would not fit.", id="k8x.E008")
        )
    for path, message in tolerations_errors(value=settings.K8X_ALLOWED_TOLERATIONS, field="K8X_ALLOWED_TOLERATIONS"):
        errors.append(
            Error(
                f"{path}: {message}.",
                hint='A JSON list of Kubernetes tolerations, e.g. [{"key": "gpu", "operator": "Exists"}].',
                id="k8x.E009",
            )
        )
    return errors
