"""The audit log through the console: every kind of change leaves one entry (who, what, from
what to what), secrets by name only; the project's Audit page filters and pages them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone

from k8x_core import kube
from k8x_core.models import ApiKey, AuditEntry, GitRepository, Membership, Secret, Service, Trigger, Webhook
from tests.console.conftest import World, client_for, make_user

pytestmark = pytest.mark.django_db

SECRET_VALUE = "s3cr3t-value-never-logged"


def entries(world: World) -> list[tuple[str, str, str, str, str]]:
    """(actor kind, actor name, action, kind, object name), oldest first."""
    return list(
        AuditEntry.objects.filter(project=world.acme)
        .order_by("created_at", "pk")
        .values_list("actor_kind", "actor_name", "action", "kind", "object_name")
    )


def last(world: World) -> AuditEntry:
    return AuditEntry.objects.filter(project=world.acme).order_by("-created_at", "-pk").first()  # type: ignore[return-value]


def test_configs_secrets_members_keys_webhooks_triggers_services_each_leave_an_entry(world: World) -> None:
    owner = client_for(world.owner)
    admin = client_for(world.admin)
    make_user("newbie")

    # configs: create, update, delete
    admin.post(reverse("console:project_configs", args=["acme"]), {"key": "COLOR", "value": "blue"})
    admin.post(reverse("console:project_configs", args=["acme"]), {"key": "COLOR", "value": "red"})
    assert last(world).changes == {"value": {"old": "blue", "new": "red"}}
    admin.post(reverse("console:project_configs", args=["acme"]), {"key": "COLOR", "value": "", "delete": "1"})
    # secrets: create, update, delete (names only)
    owner.post(reverse("console:project_secrets", args=["acme"]), {"key": "TOKEN", "value": SECRET_VALUE})
    owner.post(reverse("console:project_secrets", args=["acme"]), {"key": "TOKEN", "value": SECRET_VALUE + "2"})
    assert last(world).changes == {"ciphertext": {"old": "<redacted>", "new": "<redacted>"}}
    secret = Secret.objects.get(project=world.acme, key="TOKEN")
    owner.post(reverse("console:project_secret_delete", args=["acme", secret.pk]))
    # members: add, change role, remove
    owner.post(reverse("console:project_members", args=["acme"]), {"username": "newbie", "role": "user"})
    owner.post(reverse("console:project_members", args=["acme"]), {"username": "newbie", "role": "admin"})
    assert last(world).changes == {"role": {"old": "user", "new": "admin"}}
    membership = Membership.objects.get(project=world.acme, user__username="newbie")
    owner.post(reverse("console:project_member_remove", args=["acme", membership.pk]))
    # API keys: create, revoke
    admin.post(reverse("console:project_apikeys", args=["acme"]), {"name": "ci"})
    key = ApiKey.objects.get(project=world.acme, name="ci")
    admin.post(reverse("console:project_apikey_revoke", args=["acme", key.pk]))
    # webhooks: create, delete
    admin.post(reverse("console:project_webhooks", args=["acme"]), {"slug": "acme-gh", "event_type": "com.acme.push"})
    hook = Webhook.objects.get(slug="acme-gh")
    admin.post(reverse("console:project_webhook_delete", args=["acme", hook.pk]))
    # triggers: create, edit, delete
    base = ["acme", "billing"]
    admin.post(reverse("console:trigger_create", args=base), {"event_type": "com.acme.order.*", "active": "on"})
    trigger = Trigger.objects.get(service=world.service)
    admin.post(reverse("console:trigger_edit", args=[*base, trigger.pk]), {"event_type": "com.acme.x", "active": "on"})
    assert last(world).changes == {"event_type": {"old": "com.acme.order.*", "new": "com.acme.x"}}
    admin.post(reverse("console:trigger_delete", args=[*base, trigger.pk]))
    # git repositories: add, token, delete
    admin.post(
        reverse("console:repo_list", args=["acme"]),
        {"name": "svc", "url": "https://git.invalid/x.git", "branch": "main", "auth": "https_token", "token": "tok-1"},
    )
    admin.post(reverse("console:repo_token", args=["acme", "svc"]), {"token": "tok-2-never-logged"})
    assert GitRepository.objects.filter(project=world.acme, name="svc").exists()
    admin.post(reverse("console:repo_delete", args=["acme", "svc"]))
    # services: deactivate, delete
    admin.post(reverse("console:service_toggle", args=base))
    assert last(world).changes == {"active": {"old": True, "new": False}}
    admin.post(reverse("console:service_delete", args=base), {"confirm_name": "billing"})

    assert entries(world) == [
        ("user", "admin1", "create", "config", "COLOR"),
        ("user", "admin1", "update", "config", "COLOR"),
        ("user", "admin1", "delete", "config", "COLOR"),
        ("user", "owner1", "create", "secret", "TOKEN"),
        ("user", "owner1", "update", "secret", "TOKEN"),
        ("user", "owner1", "delete", "secret", "TOKEN"),
        ("user", "owner1", "create", "member", "newbie"),
        ("user", "owner1", "update", "member", "newbie"),
        ("user", "owner1", "delete", "member", "newbie"),
        ("user", "admin1", "create", "api_key", "ci"),
        ("user", "admin1", "update", "api_key", "ci"),
        ("user", "admin1", "create", "webhook", "acme-gh"),
        ("user", "admin1", "delete", "webhook", "acme-gh"),
        ("user", "admin1", "create", "trigger", "billing: com.acme.order.*"),
        ("user", "admin1", "update", "trigger", "billing: com.acme.x"),
        ("user", "admin1", "delete", "trigger", "billing: com.acme.x"),
        ("user", "admin1", "create", "git_repository", "svc"),
        ("user", "admin1", "update", "git_repository", "svc"),
        ("user", "admin1", "delete", "git_repository", "svc"),
        ("user", "admin1", "update", "service", "billing"),
        ("user", "admin1", "delete", "service", "billing"),
    ]
    # No value of a secret, webhook secret, token or API key anywhere in the log.
    dumped = json.dumps([model_to_dict(e) for e in AuditEntry.objects.all()], default=str)
    for needle in (SECRET_VALUE, "tok-1", "tok-2-never-logged", key.key_hash, hook.secret_ciphertext):
        assert needle not in dumped
    secret_rows = AuditEntry.objects.filter(kind="secret")
    assert {e.object_name for e in secret_rows} == {"TOKEN"}
    repo_create = AuditEntry.objects.get(kind="git_repository", action="create")
    assert repo_create.changes["https_token_encrypted"] == {"old": None, "new": "<redacted>"}
    assert repo_create.changes["url"] == {"old": None, "new": "https://git.invalid/x.git"}


def test_the_audit_page_filters_and_pages(world: World) -> None:
    now = timezone.now()
    rows = [
        AuditEntry(
            project=world.acme,
            actor_kind="user",
            actor_name="alice" if i % 2 else "bob",
            action="update",
            kind="config" if i % 3 else "service",
            object_name=f"OBJ{i}",
        )
        for i in range(60)
    ]
    AuditEntry.objects.bulk_create(rows)
    for i, row in enumerate(rows):
        AuditEntry.objects.filter(pk=row.pk).update(created_at=now - timedelta(hours=60 - i))
    AuditEntry.objects.create(
        project=world.other, actor_kind="user", actor_name="x", action="create", kind="config", object_name="FOREIGN"
    )
    url = reverse("console:project_audit", args=["acme"])
    admin = client_for(world.admin)

    first = admin.get(url)
    assert first.status_code == 200
    page = first.context["page"]
    assert [e.object_name for e in page.items] == [f"OBJ{i}" for i in range(59, 9, -1)]
    second = admin.get(url, {"older": page.older})
    assert [e.object_name for e in second.context["page"].items] == [f"OBJ{i}" for i in range(9, -1, -1)]
    assert "FOREIGN" not in first.content.decode()

    by_kind = admin.get(url, {"kind": "service"}).context["page"].items
    assert {e.kind for e in by_kind} == {"service"} and len(by_kind) == 20
    by_actor = admin.get(url, {"actor": "ali"}).context["page"].items
    assert {e.actor_name for e in by_actor} == {"alice"} and len(by_actor) == 30
    since = (now - timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
    recent = admin.get(url, {"since": since}).context["page"].items
    assert [e.object_name for e in recent] == ["OBJ59", "OBJ58", "OBJ57", "OBJ56", "OBJ55"]

    assert client_for(world.user).get(url).status_code == 403
    assert client_for(world.outsider).get(url).status_code == 404


@pytest.fixture
def on_cluster(settings: Any, kube_cluster: Any) -> None:
    settings.KUBECONFIG = kube_cluster.kubeconfig
    kube.api_client_reset()


@pytest.mark.cluster
def test_service_create_and_edit_are_recorded_with_the_field_diff(world: World, on_cluster: None) -> None:
    admin = client_for(world.admin)
    form = {"name": "audited", "image": "localhost:5000/k8x/busybox:1", "retries": "0", "active": "on"}
    response = admin.post(reverse("console:service_create", args=["acme"]), form)
    assert response.status_code == 302, response.context["form"].errors
    response = admin.post(reverse("console:service_edit", args=["acme", "audited"]), {**form, "retries": "2"})
    assert response.status_code == 302, response.context["form"].errors
    created, updated = AuditEntry.objects.filter(kind="service", object_name="audited").order_by("pk")
    service = Service.objects.get(project=world.acme, name="audited")
    assert (created.action, created.actor_name, created.object_id) == ("create", "admin1", str(service.pk))
    assert created.changes["image"] == {"old": None, "new": "localhost:5000/k8x/busybox:1"}
    assert (updated.action, updated.changes) == ("update", {"retries": {"old": 0, "new": 2}})
