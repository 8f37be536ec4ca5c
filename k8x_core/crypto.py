"""Encryption at rest for secret values (Fernet, with key rotation).

K8X_SECRETS_KEY holds one or more Fernet keys: the first encrypts, every key
decrypts, so a new key can be put first and old ciphertexts re-encrypted with
``secret_rotate`` (``manage.py k8x_secret rotate``).
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet


class SecretDecryptionError(Exception):
    """A stored ciphertext cannot be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    # Imported on first use: cryptography's bindings add ~8 MB to a process, and
    # the processes that never touch a secret (hub, watcher, scheduler) import
    # this module through the models and the system checks.
    from cryptography.fernet import Fernet, MultiFernet

    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet_current() -> MultiFernet:
    return _fernet(tuple(settings.K8X_SECRETS_KEY))


def secret_encrypt(*, plaintext: str) -> str:
    return fernet_current().encrypt(plaintext.encode()).decode()


def secret_decrypt(*, ciphertext: str) -> str:
    from cryptography.fernet import InvalidToken  # loaded by fernet_current() anyway (see _fernet)

    try:
        return fernet_current().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("cannot decrypt: no configured key in K8X_SECRETS_KEY matches") from exc


def secret_rotate(*, ciphertext: str) -> str:
    """Re-encrypt under the first (current) key."""
    from cryptography.fernet import InvalidToken  # loaded by fernet_current() anyway (see _fernet)

    try:
        return fernet_current().rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("cannot rotate: no configured key in K8X_SECRETS_KEY matches") from exc


def key_is_valid(key: str) -> bool:
    """Fernet's own test of a key (32 bytes, URL-safe base64, as ``Fernet()``
    decodes it), without loading cryptography for the system checks."""
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError, TypeError, AttributeError):
        return False
