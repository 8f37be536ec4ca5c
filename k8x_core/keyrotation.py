"""Re-encrypting every Fernet-encrypted column under the current key
(``manage.py k8x_secret rotate``), so the old key can be dropped afterwards.

ENCRYPTED_FIELDS lists every such column; a test checks that no model field
named ``*ciphertext*``/``*encrypted*`` is missing from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models, transaction

from k8x_core.crypto import SecretDecryptionError, secret_rotate
from k8x_core.models import GitRepository, NotificationRule, Secret, Webhook

ENCRYPTED_FIELDS: list[tuple[type[models.Model], str]] = [
    (Secret, "ciphertext"),
    (Webhook, "secret_ciphertext"),
    (NotificationRule, "secret_ciphertext"),
    (GitRepository, "deploy_private_key_encrypted"),
    (GitRepository, "https_token_encrypted"),
]


class RotationFailed(Exception):
    """Some values cannot be decrypted with any configured key; nothing was changed."""

    def __init__(self, undecryptable: list[str]) -> None:
        super().__init__(
            f"{len(undecryptable)} value(s) no key in K8X_SECRETS_KEY decrypts, nothing re-encrypted: "
            + ", ".join(undecryptable)
        )
        self.undecryptable = undecryptable


@dataclass
class RotationResult:
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def encrypted_fields_rotate() -> RotationResult:
    """Re-encrypt every encrypted value with the first key, in one transaction
    (rows locked), or raise RotationFailed naming each value (model, row,
    field; never the value) that no key decrypts, changing nothing."""
    result = RotationResult()
    undecryptable: list[str] = []
    with transaction.atomic():
        for model, name in ENCRYPTED_FIELDS:
            label = f"{model._meta.model_name}.{name}"
            result.counts[label] = 0
            rows = model._default_manager.select_for_update().exclude(**{name: ""}).values_list("pk", name)
            for pk, ciphertext in rows:
                try:
                    rotated = secret_rotate(ciphertext=ciphertext)
                except SecretDecryptionError:
                    undecryptable.append(f"{label} of {model._meta.model_name} {pk}")
                    continue
                model._default_manager.filter(pk=pk).update(**{name: rotated})
                result.counts[label] += 1
        if undecryptable:
            raise RotationFailed(undecryptable)
    return result
