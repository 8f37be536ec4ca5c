"""`k8x_secret rotate` re-encrypts every encrypted column (secrets, webhook
secrets, git deploy keys and tokens) so the old key can be dropped; a value no
key decrypts stops the rotation with its name, changing nothing."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError

from k8x_core.catalog.git import repo_create, repo_key_regenerate
from k8x_core.crypto import SecretDecryptionError, secret_decrypt
from k8x_core.events.webhooks import webhook_create
from k8x_core.keyrotation import ENCRYPTED_FIELDS
from k8x_core.models import GitRepository, Project, Secret, Webhook
from k8x_core.runs.configs import secret_set

pytestmark = pytest.mark.django_db

PLAIN = "rotate-me-9c1e"


def test_every_encrypted_column_is_rotated() -> None:
    listed = {(model, name) for model, name in ENCRYPTED_FIELDS}
    found = {
        (model, f.name)
        for model in apps.get_app_config("k8x_core").get_models()
        for f in model._meta.get_fields()
        if "ciphertext" in f.name or "encrypted" in f.name
    }
    assert found and found <= listed, f"encrypted fields missing from ENCRYPTED_FIELDS: {found - listed}"


def test_rotate_covers_secrets_webhooks_and_git_credentials(settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.K8X_SECRETS_KEY = [old]
    project = Project.objects.create(slug="rot")
    secret_set(key="TOKEN", value=PLAIN, project=project)
    hook, hook_secret = webhook_create(project=project, slug="rot-hook", event_type="com.acme.x")
    ssh = repo_create(project=project, name="ssh", url="ssh://git@git.example/x.git", auth=GitRepository.Auth.SSH)
    repo_key_regenerate(repo=ssh)
    https = repo_create(
        project=project,
        name="https",
        url="https://git.example/x.git",
        auth=GitRepository.Auth.HTTPS_TOKEN,
        token="ghp-token-value",
    )
    ssh.refresh_from_db()
    private_key = secret_decrypt(ciphertext=ssh.deploy_private_key_encrypted)

    settings.K8X_SECRETS_KEY = [new, old]
    out = StringIO()
    call_command("k8x_secret", "rotate", stdout=out)
    assert "re-encrypted 4 value(s)" in out.getvalue()
    assert "webhook.secret_ciphertext: 1" in out.getvalue()
    assert "gitrepository.https_token_encrypted: 1" in out.getvalue()

    settings.K8X_SECRETS_KEY = [new]  # the old key is gone
    assert Secret.objects.get(key="TOKEN").reveal() == PLAIN
    assert Webhook.objects.get(pk=hook.pk).reveal_secret() == hook_secret
    ssh.refresh_from_db()
    https.refresh_from_db()
    assert secret_decrypt(ciphertext=ssh.deploy_private_key_encrypted) == private_key
    assert secret_decrypt(ciphertext=https.https_token_encrypted) == "ghp-token-value"
    settings.K8X_SECRETS_KEY = [old]  # and the values really are under the new key
    with pytest.raises(SecretDecryptionError):
        secret_decrypt(ciphertext=https.https_token_encrypted)


def test_undecryptable_value_stops_rotation_and_changes_nothing(settings: Any) -> None:
    lost, old, new = (Fernet.generate_key().decode() for _ in range(3))
    settings.K8X_SECRETS_KEY = [lost]
    orphan = secret_set(key="ORPHAN", value=PLAIN)
    settings.K8X_SECRETS_KEY = [old]
    project = Project.objects.create(slug="rot2")
    hook, _ = webhook_create(project=project, slug="rot2-hook", event_type="com.acme.x")
    before = Webhook.objects.get(pk=hook.pk).secret_ciphertext
    settings.K8X_SECRETS_KEY = [new, old]
    with pytest.raises(CommandError) as info:
        call_command("k8x_secret", "rotate", stdout=StringIO())
    message = str(info.value)
    assert f"secret.ciphertext of secret {orphan.pk}" in message and "nothing re-encrypted" in message
    assert PLAIN not in message
    assert Webhook.objects.get(pk=hook.pk).secret_ciphertext == before
