"""Secrets are encrypted at rest and never readable back by accident."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.forms.models import model_to_dict

from k8x_core.crypto import SecretDecryptionError, key_is_valid, secret_decrypt, secret_encrypt
from k8x_core.models import Project, Secret, Service, Webhook
from k8x_core.runs.configs import secret_set

PLAIN = "hunter2-very-secret-value-7f3a"


@pytest.mark.django_db(transaction=True)
def test_database_dump_contains_no_plaintext_secret() -> None:
    project = Project.objects.create(slug="dump")
    service = Service.objects.create(project=project, name="svc", image="x")
    secret_set(key="DB_PASSWORD", value=PLAIN, service=service)
    hook = Webhook(project=project, slug="gh", event_type="com.github.push")
    hook.set_secret(PLAIN + "-hook")
    hook.save()

    db = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": db["PASSWORD"]}
    dump = subprocess.run(
        ["pg_dump", "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"], "--data-only", db["NAME"]],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "DB_PASSWORD" in dump  # the dump is of the right database
    assert PLAIN not in dump
    stored = Secret.objects.get(key="DB_PASSWORD")
    assert stored.ciphertext in dump
    assert stored.reveal() == PLAIN
    assert Webhook.objects.get(slug="gh").reveal_secret() == PLAIN + "-hook"


@pytest.mark.django_db
def test_default_representations_do_not_show_the_value() -> None:
    secret = secret_set(key="TOKEN", value=PLAIN)
    for text in (str(secret), repr(secret), str(model_to_dict(secret)), str(Secret.objects.values().get())):
        assert PLAIN not in text
    assert not hasattr(secret, "value")


@pytest.mark.django_db
def test_setting_again_replaces_the_value() -> None:
    secret_set(key="TOKEN", value="one")
    secret_set(key="TOKEN", value="two")
    assert Secret.objects.get(key="TOKEN").reveal() == "two"


def test_key_rotation(settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.K8X_SECRETS_KEY = [old]
    token = secret_encrypt(plaintext=PLAIN)
    settings.K8X_SECRETS_KEY = [new, old]
    assert secret_decrypt(ciphertext=token) == PLAIN
    fresh = secret_encrypt(plaintext=PLAIN)
    settings.K8X_SECRETS_KEY = [new]
    assert secret_decrypt(ciphertext=fresh) == PLAIN
    with pytest.raises(SecretDecryptionError, match="no configured key"):
        secret_decrypt(ciphertext=token)


@pytest.mark.django_db
def test_rotate_command_reencrypts_under_the_new_key(settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.K8X_SECRETS_KEY = [old]
    secret_set(key="TOKEN", value=PLAIN)
    settings.K8X_SECRETS_KEY = [new, old]
    call_command("k8x_secret", "rotate")
    settings.K8X_SECRETS_KEY = [new]
    assert Secret.objects.get(key="TOKEN").reveal() == PLAIN


@pytest.mark.django_db(transaction=True)
def test_secret_command_reads_the_value_from_stdin() -> None:
    project = Project.objects.create(slug="cli")
    Service.objects.create(project=project, name="svc", image="x")
    proc = subprocess.run(
        [sys.executable, "manage.py", "k8x_secret", "set", "--project", "cli", "--service", "svc", "API_TOKEN"],
        input=PLAIN + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": _database_url()},
        check=True,
    )
    assert "API_TOKEN set at service scope" in proc.stdout
    assert PLAIN not in proc.stdout + proc.stderr
    secret = Secret.objects.get(key="API_TOKEN")
    assert secret.service is not None
    assert (secret.scope, secret.service.name, secret.reveal()) == ("service", "svc", PLAIN)


@pytest.mark.django_db
def test_secret_command_names_what_is_wrong(monkeypatch) -> None:
    Project.objects.create(slug="cli")
    monkeypatch.setattr("sys.stdin", io.StringIO("value\n"))
    with pytest.raises(CommandError, match="no project 'nope'"):
        call_command("k8x_secret", "set", "--project", "nope", "KEY")
    monkeypatch.setattr("sys.stdin", io.StringIO("value\n"))
    with pytest.raises(CommandError, match="key"):
        call_command("k8x_secret", "set", "--project", "cli", "bad-key")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="empty value"):
        call_command("k8x_secret", "set", "KEY")


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.parametrize(
    "key",
    [
        Fernet.generate_key().decode(),
        Fernet.generate_key().decode().rstrip("="),  # padding missing
        "too-short",
        base64.urlsafe_b64encode(b"x" * 33).decode(),
        base64.urlsafe_b64encode(b"x" * 31).decode(),
        base64.b64encode(b"\xfb" * 32).decode(),  # standard alphabet: + and / are not URL-safe
        "é" * 44,
        "",
    ],
)
def test_key_check_agrees_with_fernet(key: str) -> None:
    """The system check's key test is Fernet's own, without loading cryptography."""
    try:
        Fernet(key.encode())
        fernet_accepts = True
    except (ValueError, TypeError):
        fernet_accepts = False
    assert key_is_valid(key) is fernet_accepts
