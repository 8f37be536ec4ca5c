"""The console's Run defaults tab and registry logins: who may change what, errors
that name the field, placement read-only, credentials never shown, every change audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from k8x_core.models import AuditEntry, Project, Secret, SecretKind
from k8x_core.runs.configs import secret_keys_resolve, secrets_resolve
from tests.console.conftest import World, client_for

pytestmark = pytest.mark.django_db

GOOD = '{"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}'


def _url(name: str = "console:project_defaults") -> str:
    return reverse(name, args=["acme"])


def test_owner_changes_the_run_defaults_and_it_is_audited(world: World) -> None:
    client = client_for(world.owner)
    response = client.post(_url(), {"default_resources": GOOD, "default_timeout": "600"})
    assert response.status_code == 302
    project = Project.objects.get(pk=world.acme.pk)
    assert project.default_resources == {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}
    assert project.default_timeout == 600
    entry = AuditEntry.objects.get(project=project, kind="project")
    assert entry.actor_name == "owner1" and entry.action == "update"
    assert entry.changes["default_timeout"] == {"old": None, "new": 600}
    assert entry.changes["default_resources"]["new"]["limits"] == {"memory": "256Mi"}
    # Cleared again: no defaults.
    assert client.post(_url(), {"default_resources": "", "default_timeout": ""}).status_code == 302
    project.refresh_from_db()
    assert project.default_resources == {} and project.default_timeout is None


@pytest.mark.parametrize("who", ["admin", "user"])
def test_only_owners_change_the_run_defaults(world: World, who: str) -> None:
    client = client_for(getattr(world, who))
    assert client.post(_url(), {"default_resources": GOOD, "default_timeout": "600"}).status_code == 403
    assert Project.objects.get(pk=world.acme.pk).default_timeout is None
    page = client.get(_url())
    assert page.status_code == 200
    html = page.content.decode()
    assert "Only project owners change the run defaults" in html and 'name="default_timeout"' not in html


def test_outsider_sees_no_run_defaults(world: World) -> None:
    assert client_for(world.outsider).get(_url()).status_code == 404


def test_bad_values_are_refused_naming_the_field(world: World) -> None:
    client = client_for(world.owner)
    response = client.post(_url(), {"default_resources": '{"limits": {"memory": "lots"}}', "default_timeout": "0"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "default_resources.limits.memory" in html
    assert 'id="id_default_timeout_errors"' in html
    response = client.post(_url(), {"default_resources": "{not json", "default_timeout": ""})
    assert "Not valid JSON" in response.content.decode()
    assert Project.objects.get(pk=world.acme.pk).default_resources == {}


def test_placement_is_read_only_in_the_console(world: World) -> None:
    Project.objects.filter(pk=world.acme.pk).update(
        node_selector={"k8x.io/pool": "batch"}, tolerations=[{"key": "pool", "operator": "Exists"}]
    )
    client = client_for(world.owner)
    html = client.get(_url()).content.decode()
    assert "k8x.io/pool" in html and "Set by a platform administrator" in html
    assert 'name="node_selector"' not in html and 'name="tolerations"' not in html
    # A forged field changes nothing.
    client.post(_url(), {"default_resources": "", "default_timeout": "", "node_selector": '{"pool": "other"}'})
    assert Project.objects.get(pk=world.acme.pk).node_selector == {"k8x.io/pool": "batch"}


def _login(client: Client, **extra: str) -> Any:
    data = {
        "kind": "registry",
        "login-key": "REGISTRY_LOCAL",
        "login-server": "localhost:5001",
        "login-username": "robot-user",
        "login-password": "pull-pass-xyz",
        **extra,
    }
    return client.post(_url("console:project_secrets"), data)


def test_owner_adds_a_registry_login_shown_by_server_only(world: World) -> None:
    client = client_for(world.owner)
    assert _login(client).status_code == 302
    secret = Secret.objects.get(key="REGISTRY_LOCAL")
    assert secret.kind == SecretKind.REGISTRY and secret.server == "localhost:5001"
    html = client.get(_url("console:project_secrets")).content.decode()
    assert "localhost:5001" in html and "robot-user" not in html and "pull-pass-xyz" not in html
    # Never a variable of any service.
    assert "REGISTRY_LOCAL" not in secrets_resolve(service=world.service)
    assert "REGISTRY_LOCAL" not in secret_keys_resolve(service=world.service)
    entry = AuditEntry.objects.get(kind="secret", object_name="REGISTRY_LOCAL")
    text = str(entry.changes)
    assert entry.changes["server"] == {"old": None, "new": "localhost:5001"}
    assert "robot-user" not in text and "pull-pass-xyz" not in text
    # Deleted: audited by name.
    response = client.post(reverse("console:project_secret_delete", args=["acme", secret.pk]))
    assert response.status_code == 302 and not Secret.objects.filter(key="REGISTRY_LOCAL").exists()
    assert AuditEntry.objects.filter(kind="secret", object_name="REGISTRY_LOCAL", action="delete").exists()


@pytest.mark.parametrize("who", ["admin", "user"])
def test_only_owners_add_registry_logins(world: World, who: str) -> None:
    assert _login(client_for(getattr(world, who))).status_code == 403
    assert not Secret.objects.filter(key="REGISTRY_LOCAL").exists()


def test_registry_login_errors_name_the_field(world: World) -> None:
    client = client_for(world.owner)
    response = _login(client, **{"login-server": "http://bad host/"})
    assert response.status_code == 200
    assert 'id="id_login-server_errors"' in response.content.decode()
    response = _login(client, **{"login-username": "a:b"})
    assert 'id="id_login-username_errors"' in response.content.decode()
    assert not Secret.objects.filter(key="REGISTRY_LOCAL").exists()
