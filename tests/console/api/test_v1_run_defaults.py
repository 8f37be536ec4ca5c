"""The management API's run defaults (PATCH /api/v1/projects/<slug>) and registry logins
(PUT .../secrets/<key> with kind registry): roles, errors naming the field, the
server shown and the credentials never, answers as the OpenAPI document says."""

from __future__ import annotations

import pytest

from k8x_core.models import AuditEntry, Project, Role, Secret, SecretKind
from tests.console.api.test_status_openapi import assert_conforms
from tests.console.api.test_v1 import V1, key_caller, make_caller
from tests.console.conftest import World

pytestmark = pytest.mark.django_db

P = "/api/v1/projects/{slug}"
LOGIN = {"kind": "registry", "server": "localhost:5001", "username": "robot-user", "password": "pull-pass-xyz"}


def test_owner_patches_the_run_defaults(world: World) -> None:
    who = make_caller(world, "key-owner")
    body = {"default_resources": {"limits": {"memory": "256Mi"}}, "default_timeout": 900}
    response = who.call("PATCH", V1, body)
    assert response.status_code == 200, response.content
    assert_conforms(P, "patch", response)
    assert response.json()["default_resources"] == {"limits": {"memory": "256Mi"}}
    assert response.json()["default_timeout"] == 900
    # Left out: kept.
    response = who.call("PATCH", V1, {"default_timeout": None})
    assert response.json()["default_resources"] == {"limits": {"memory": "256Mi"}}
    assert response.json()["default_timeout"] is None
    entries = AuditEntry.objects.filter(project=world.acme, kind="project").order_by("id")
    assert [e.actor_kind for e in entries] == ["api_key", "api_key"]
    assert entries[1].changes == {"default_timeout": {"old": 900, "new": None}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"default_resources": {"limits": {"memory": "lots"}}}, "default_resources.limits.memory"),
        ({"default_resources": {"limts": {"memory": "1Gi"}}}, "default_resources.limts"),
        ({"default_resources": "1Gi"}, "default_resources"),
        ({"default_timeout": 0}, "default_timeout"),
        ({"default_timeout": "60"}, "default_timeout"),
        ({"node_selector": {"pool": "x"}}, "node_selector"),
    ],
)
def test_bad_defaults_name_the_field(world: World, body: dict[str, object], field: str) -> None:
    response = make_caller(world, "key-owner").call("PATCH", V1, body)
    assert response.status_code == 400
    assert_conforms(P, "patch", response)
    assert response.json()["field"] == field, response.json()
    project = Project.objects.get(pk=world.acme.pk)
    assert project.default_resources == {} and project.default_timeout is None and project.node_selector == {}


@pytest.mark.parametrize(("caller", "status"), [("key-admin", 403), ("session-admin", 403), ("key-user", 403)])
def test_only_owners_patch(world: World, caller: str, status: int) -> None:
    response = make_caller(world, caller).call("PATCH", V1, {"default_timeout": 60})
    assert response.status_code == status
    assert Project.objects.get(pk=world.acme.pk).default_timeout is None


def test_another_projects_key_gets_404(world: World) -> None:
    who = key_caller(world, Role.OWNER, project=world.other)
    assert who.call("PATCH", V1, {"default_timeout": 60}).status_code == 404
    assert who.call("PUT", f"{V1}/secrets/REG", LOGIN).status_code == 404
    assert Project.objects.get(pk=world.acme.pk).default_timeout is None


def test_registry_login_through_the_api(world: World) -> None:
    who = make_caller(world, "key-owner")
    response = who.call("PUT", f"{V1}/secrets/REG", LOGIN)
    assert response.status_code == 200, response.content
    assert_conforms(f"{P}/secrets/{{key}}", "put", response)
    assert response.json() == {**response.json(), "kind": "registry", "server": "localhost:5001"}
    listed = who.call("GET", f"{V1}/secrets")
    assert_conforms(f"{P}/secrets", "get", listed)
    text = listed.content.decode()
    assert "localhost:5001" in text and "robot-user" not in text and "pull-pass-xyz" not in text
    assert Secret.objects.get(key="REG").kind == SecretKind.REGISTRY
    assert who.call("DELETE", f"{V1}/secrets/REG").status_code == 204
    assert not Secret.objects.filter(key="REG").exists()
    assert AuditEntry.objects.filter(kind="secret", object_name="REG", action="delete").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**LOGIN, "server": "not a host"}, "server"),
        ({**LOGIN, "username": ""}, "username"),
        ({**LOGIN, "password": 5}, "password"),
        ({**LOGIN, "extra": 1}, "extra"),
        ({"kind": "vault", "value": "x"}, "kind"),
    ],
)
def test_registry_login_errors_name_the_field(world: World, body: dict[str, object], field: str) -> None:
    response = make_caller(world, "key-owner").call("PUT", f"{V1}/secrets/REG", body)
    assert response.status_code == 400
    assert response.json()["field"] == field, response.json()
    assert not Secret.objects.filter(key="REG").exists()


def test_registry_login_is_project_scope_and_owner_only(world: World) -> None:
    response = make_caller(world, "key-owner").call("PUT", f"{V1}/services/billing/secrets/REG", LOGIN)
    assert response.status_code == 400 and response.json()["field"] == "kind"
    assert make_caller(world, "key-admin").call("PUT", f"{V1}/secrets/REG", LOGIN).status_code == 403
    assert not Secret.objects.filter(key="REG").exists()
