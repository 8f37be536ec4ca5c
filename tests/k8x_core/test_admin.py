"""The admin masks secrets: write-only values, never rendered back."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.test import Client

from k8x_core.admin import MASK
from k8x_core.models import AuditEntry, NotificationRule, Project, Secret, Webhook
from k8x_core.runs.configs import secret_set

pytestmark = pytest.mark.django_db

PLAIN = "s3cr3t-admin-value-91c"


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


def test_changelist_and_change_page_mask_the_value(admin_client_: Client) -> None:
    secret = secret_set(key="TOKEN", value=PLAIN)
    listing = admin_client_.get("/admin/k8x_core/secret/")
    assert listing.status_code == 200
    assert PLAIN not in listing.content.decode()
    assert MASK in listing.content.decode()
    change = admin_client_.get(f"/admin/k8x_core/secret/{secret.pk}/change/")
    body = change.content.decode()
    assert change.status_code == 200
    assert PLAIN not in body
    assert secret.ciphertext not in body
    assert 'type="password"' in body


def test_add_encrypts_and_empty_change_keeps_the_value(admin_client_: Client) -> None:
    response = admin_client_.post(
        "/admin/k8x_core/secret/add/", {"scope": "platform", "key": "NEW_TOKEN", "value": PLAIN}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    secret = Secret.objects.get(key="NEW_TOKEN")
    assert secret.reveal() == PLAIN
    assert PLAIN not in secret.ciphertext
    response = admin_client_.post(
        f"/admin/k8x_core/secret/{secret.pk}/change/", {"scope": "platform", "key": "NEW_TOKEN", "value": ""}
    )
    assert response.status_code == 302
    assert Secret.objects.get(pk=secret.pk).reveal() == PLAIN


def test_add_without_value_names_the_field(admin_client_: Client) -> None:
    response = admin_client_.post("/admin/k8x_core/secret/add/", {"scope": "platform", "key": "EMPTY", "value": ""})
    assert response.status_code == 200
    assert "A new secret needs a value." in response.content.decode()
    assert not Secret.objects.filter(key="EMPTY").exists()


def test_webhook_secret_masked(admin_client_: Client) -> None:
    project = Project.objects.create(slug="hooks")
    hook = Webhook(project=project, slug="gh", event_type="com.github.push")
    hook.set_secret(PLAIN)
    hook.save()
    for url in ("/admin/k8x_core/webhook/", f"/admin/k8x_core/webhook/{hook.pk}/change/"):
        body = admin_client_.get(url).content.decode()
        assert PLAIN not in body
        assert hook.secret_ciphertext not in body


def test_every_model_has_an_admin(admin_client_: Client) -> None:
    for model in apps.get_app_config("k8x_core").get_models():
        assert admin.site.is_registered(model), model.__name__


def test_notification_rule_secret_and_url_path_hidden(admin_client_: Client) -> None:
    project = Project.objects.create(slug="notes")
    rule = NotificationRule(project=project, name="slack", channel="webhook", url="https://hooks.test/T1/B2/tok3n")
    rule.set_secret(PLAIN)
    rule.save()
    for url in ("/admin/k8x_core/notificationrule/", f"/admin/k8x_core/notificationrule/{rule.pk}/change/"):
        body = admin_client_.get(url).content.decode()
        assert PLAIN not in body and rule.secret_ciphertext not in body
        assert "tok3n" not in body and "https://hooks.test/…" in body


def _project_form(project: Project, **fields: str) -> dict[str, str]:
    """The project admin's change form as it shows a new project, with ``fields`` changed."""
    return {
        "slug": project.slug,
        "name": project.slug,
        "namespace": project.namespace,
        # The project's security and placement fields (superuser-only too).
        "pod_security_level": "restricted",
        "quota": "{}",
        "limits": "{}",
        "default_resources": "{}",
        "node_selector": "{}",
        "tolerations": "[]",
        **fields,
    }


def test_only_a_superuser_sets_a_projects_retention(admin_client_: Client) -> None:
    project = Project.objects.create(slug="kept")
    url = f"/admin/k8x_core/project/{project.pk}/change/"
    form = _project_form(project, retention_runs_days="3")
    assert admin_client_.post(url, form).status_code == 302
    project.refresh_from_db()
    assert project.retention_runs_days == 3

    staff = User.objects.create_user(username="staff", password="pw-staff-1", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["change_project", "view_project"]))
    client = Client()
    client.force_login(staff)
    assert client.post(url, {**form, "retention_runs_days": "90"}).status_code == 302
    project.refresh_from_db()
    assert project.retention_runs_days == 3


def test_changes_in_the_admin_site_are_audited(admin_client_: Client) -> None:
    project = Project.objects.create(slug="watched")
    url = f"/admin/k8x_core/project/{project.pk}/change/"
    form = _project_form(project, retention_runs_days="9")
    assert admin_client_.post(url, form).status_code == 302
    response = admin_client_.post(
        "/admin/k8x_core/secret/add/", {"scope": "project", "project": project.pk, "key": "TOKEN", "value": PLAIN}
    )
    assert response.status_code == 302
    secret = Secret.objects.get(key="TOKEN")
    assert admin_client_.post(f"/admin/k8x_core/secret/{secret.pk}/delete/", {"post": "yes"}).status_code == 302

    entries = list(AuditEntry.objects.filter(project=project).order_by("pk"))
    assert [(e.kind, e.action, e.actor_kind, e.actor_name) for e in entries] == [
        ("project", "update", "user", "root"),
        ("secret", "create", "user", "root"),
        ("secret", "delete", "user", "root"),
    ]
    assert entries[0].changes["retention_runs_days"]["new"] == 9
    for entry in entries:
        assert PLAIN not in json.dumps(entry.changes)
        assert secret.ciphertext not in json.dumps(entry.changes)


def test_only_a_superuser_sets_a_projects_placement_and_it_is_audited(admin_client_: Client) -> None:
    project = Project.objects.create(slug="placed")
    url = f"/admin/k8x_core/project/{project.pk}/change/"
    form = _project_form(
        project,
        node_selector='{"k8x.io/pool": "batch"}',
        tolerations='[{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}]',
    )
    bad = admin_client_.post(url, {**form, "tolerations": '[{"key": "pool", "operator": "Sometimes"}]'})
    assert bad.status_code == 200 and "tolerations[0].operator" in bad.content.decode()
    bad = admin_client_.post(url, {**form, "node_selector": '{"bad key!": "x"}'})
    assert bad.status_code == 200 and "node_selector.bad key!" in bad.content.decode()
    assert admin_client_.post(url, form).status_code == 302
    project.refresh_from_db()
    assert project.node_selector == {"k8x.io/pool": "batch"}
    assert project.tolerations == [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}]
    entry = AuditEntry.objects.get(project=project, kind="project")
    assert entry.actor_name == "root"
    assert entry.changes["node_selector"] == {"old": {}, "new": {"k8x.io/pool": "batch"}}

    staff = User.objects.create_user(username="staff2", password="pw-staff-2", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["change_project", "view_project"]))
    client = Client()
    client.force_login(staff)
    assert client.post(url, {**form, "node_selector": '{"k8x.io/pool": "other"}'}).status_code == 302
    project.refresh_from_db()
    assert project.node_selector == {"k8x.io/pool": "batch"}
