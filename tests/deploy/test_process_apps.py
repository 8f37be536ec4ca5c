"""K8X_WEB_APPS: the background commands of deploy/Procfile set Django up
without the web apps (no Daphne, Twisted, Autobahn, Channels consumers,
console or admin registrations), with exactly the web process's models; the
ASGI entry point refuses to start without them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import manage

REPO = Path(__file__).resolve().parents[2]

# Modules only the web process needs; none may be loaded by a background command.
WEB_ONLY_MODULES = (
    "daphne",
    "twisted",
    "autobahn",
    "channels.consumer",
    "channels.generic",
    "console",
    "console.views",
    "console.forms",
    "console.consumers",
    "k8x.urls",
    "k8x_core.admin",
)

# What `manage.py <command>` does before the command runs: its environment, Django's
# set-up, the command's own module (and what it imports); then what got loaded.
_PROBE = """
import json, os, sys
import manage
manage.command_env_set(["manage.py", sys.argv[1]])
import django
django.setup()
from django.apps import apps
from django.conf import settings
from django.core.management import get_commands, load_command_class
if sys.argv[1] != "-":
    load_command_class(get_commands()[sys.argv[1]], sys.argv[1])
if sys.argv[2:] == ["checks"]:
    # K8X's own system checks (K8X_SECRETS_KEY among them), as a command runs them first.
    from django.core.checks import run_checks
    run_checks(tags=["k8x"])
print(json.dumps({
    "models": sorted(m._meta.label for m in apps.get_models(include_auto_created=True)),
    "modules": sorted(sys.modules),
    "web_apps": settings.K8X_WEB_APPS,
}))
"""


def _procfile_commands() -> set[str]:
    text = (REPO / "deploy" / "Procfile").read_text()
    return set(re.findall(r"manage\.py (\w+)", text))


def _probe(command: str, *, checks: bool = False) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "K8X_WEB_APPS"}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, command, *(["checks"] if checks else [])],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def web() -> dict[str, Any]:
    """The web process's set-up (no command: the ASGI application's apps)."""
    return _probe("-")


def test_background_commands_are_the_procfiles() -> None:
    assert _procfile_commands() == manage.BACKGROUND_COMMANDS


def test_web_process_loads_the_web_apps(web: dict[str, Any]) -> None:
    assert web["web_apps"] is True
    assert {"daphne", "channels", "k8x_core.admin", "console"} <= set(web["modules"])


@pytest.mark.parametrize("command", sorted(manage.BACKGROUND_COMMANDS))
def test_background_command_without_web_apps(command: str, web: dict[str, Any]) -> None:
    probe = _probe(command)
    assert probe["web_apps"] is False
    loaded = set(probe["modules"])
    assert sorted(m for m in WEB_ONLY_MODULES if m in loaded) == []
    # The same models: the same schema, the same cascades.
    assert probe["models"] == web["models"]


def test_the_hub_loads_no_encryption() -> None:
    """The hub never decrypts a secret: cryptography's bindings (~8 MB of RSS) stay
    unloaded, the system checks' test of K8X_SECRETS_KEY included."""
    loaded = set(_probe("k8x_hub", checks=True)["modules"])
    assert "k8x_core.crypto" in loaded
    assert sorted(m for m in loaded if m.startswith(("cryptography.fernet", "cryptography.hazmat"))) == []


def test_asgi_refuses_without_web_apps() -> None:
    env = dict(os.environ, K8X_WEB_APPS="false", DJANGO_SETTINGS_MODULE="k8x.settings")
    proc = subprocess.run(
        [sys.executable, "-c", "import k8x.asgi"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "K8X_WEB_APPS is false" in proc.stderr
