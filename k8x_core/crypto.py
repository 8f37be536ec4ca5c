"""Encryption at rest for secret values (Fernet, with key rotation).

K8X_SECRETS_KEY holds one or more Fernet keys: the first encrypts, every key
decrypts, so a new key can be put first and old ciphertexts re-encrypted with
``secret_rotate`` (``manage.py k8x_secret rotate``).
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretDecryptionError(Exception):
    """A stored ciphertext cannot be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet_current() -> MultiFernet:
    return _fernet(tuple(settings.K8X_SECRETS_KEY))


def secret_encrypt(*, plaintext: str) -> str:
    return fernet_current().encrypt(plaintext.encode()).decode()


def secret_decrypt(*, ciphertext: str) -> str:
    try:
        return fernet_current().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("cannot decrypt: no configured key in K8X_SECRETS_KEY matches") from exc


def secret_rotate(*, ciphertext: str) -> str:
    """Re-encrypt under the first (current) key."""
    try:
        return fernet_current().rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("cannot rotate: no configured key in K8X_SECRETS_KEY matches") from exc


def key_is_valid(key: str) -> bool:
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        return False
    return True
