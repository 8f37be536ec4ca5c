"""Insecure defaults refuse to start with DEBUG=False; production settings pass --deploy."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile

from cryptography.fernet import Fernet
from django.conf import settings as django_settings

from k8x_core.checks import check_settings


def ids(messages) -> set[str]:
    return {m.id for m in messages}


def test_insecure_defaults_refused_without_debug(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = django_settings.INSECURE_SECRET_KEY
    settings.K8X_SECRETS_KEY = [django_settings.INSECURE_SECRETS_KEY]
    assert {"k8x.E003", "k8x.E004"} <= ids(check_settings())


def test_insecure_defaults_allowed_with_debug(settings) -> None:
    settings.DEBUG = True
    settings.SECRET_KEY = django_settings.INSECURE_SECRET_KEY
    settings.K8X_SECRETS_KEY = [django_settings.INSECURE_SECRETS_KEY]
    assert not ids(check_settings()) & {"k8x.E003", "k8x.E004"}


def test_invalid_values_are_named(settings) -> None:
    settings.K8X_SECRETS_KEY = ["not-a-fernet-key"]
    settings.K8X_DLQ_TOPIC = settings.K8X_EVENTS_TOPIC
    settings.K8X_LOG_CAP_BYTES = 0
    messages = check_settings()
    assert {"k8x.E002", "k8x.E006", "k8x.E007"} <= ids(messages)
    assert any("K8X_LOG_CAP_BYTES" in m.msg for m in messages)


def test_api_rate_limit_may_be_off_never_negative(settings) -> None:
    settings.K8X_API_RATE_LIMIT_PER_MINUTE = 0
    assert not any("K8X_API_RATE_LIMIT_PER_MINUTE" in m.msg for m in check_settings())
    settings.K8X_API_RATE_LIMIT_PER_MINUTE = -1
    assert [m.id for m in check_settings() if "K8X_API_RATE_LIMIT_PER_MINUTE" in m.msg] == ["k8x.E007"]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "K8X_SECRETS_KEY", "DEBUG"))}
    # Keep the generated .state/k8x.env of `make up` out of this check.
    base["K8X_STATE_DIR"] = tempfile.mkdtemp(prefix="k8x-check-")
    return subprocess.run(
        [sys.executable, "manage.py", *args], capture_output=True, text=True, env={**base, **env}, check=False
    )


def test_check_deploy_is_clean_with_production_settings() -> None:
    proc = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="False",
        SECRET_KEY=secrets.token_urlsafe(50),
        K8X_SECRETS_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="k8x.example.com",
        SECURE_SSL_REDIRECT="True",
        SESSION_COOKIE_SECURE="True",
        CSRF_COOKIE_SECURE="True",
        SECURE_HSTS_SECONDS="31536000",
        DATABASE_URL="postgres://k8x:k8x@127.0.0.1:55432/k8x",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_start_refused_with_insecure_defaults() -> None:
    proc = _manage("check", DEBUG="False")
    assert proc.returncode != 0
    assert "k8x.E003" in proc.stderr and "k8x.E004" in proc.stderr


def test_tests_run_with_the_session_keys() -> None:
    # Guards the set-up in tests/conftest.py: processes started by tests
    # must decrypt what the test process encrypted.
    assert os.environ["K8X_SECRETS_KEY"] in django_settings.K8X_SECRETS_KEY
    assert os.environ["SECRET_KEY"] == django_settings.SECRET_KEY


def test_launch_threads_must_be_at_least_one(settings) -> None:
    settings.K8X_LAUNCH_THREADS = 0
    assert "k8x.E010" in ids(check_settings())
    settings.K8X_LAUNCH_THREADS = 1
    assert "k8x.E010" not in ids(check_settings())
