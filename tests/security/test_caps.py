"""Caps on what one project may hold: API keys and triggers (retries: test_policy)."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from k8x_core.events.apikeys import ApiKeyCapReached, apikey_create
from k8x_core.models import ApiKey, Membership, Project, Role, Service, Trigger
from tests.k8x_core.catalog.conftest import service_write

pytestmark = pytest.mark.django_db


@pytest.fixture
def capped(settings: Any) -> Any:
    settings.K8X_MAX_API_KEYS_PER_PROJECT = 2
    settings.K8X_MAX_TRIGGERS_PER_PROJECT = 3
    return settings


@pytest.fixture
def admin(db: None) -> tuple[Project, Client]:
    project = Project.objects.create(slug="capped")
    user = User.objects.create_user(username="capadmin", password="caps-test-pw-1")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    return project, client


def test_api_keys_per_project_are_capped(capped: Any, admin: tuple[Project, Client]) -> None:
    project, client = admin
    apikey_create(project=project, name="one")
    apikey_create(project=project, name="two")
    with pytest.raises(ApiKeyCapReached, match="already has 2 active API keys"):
        apikey_create(project=project, name="three")
    response = client.post(reverse("console:project_apikeys", args=[project.slug]), {"name": "three"})
    assert "already has 2 active API keys" in response.content.decode()
    with pytest.raises(CommandError, match="K8X_MAX_API_KEYS_PER_PROJECT"):
        call_command("k8x_apikey", "--project", project.slug, "--name", "four", stdout=StringIO(), stderr=StringIO())
    assert ApiKey.objects.filter(project=project).count() == 2


def test_triggers_per_project_are_capped(capped: Any, admin: tuple[Project, Client], tmp_path: Path) -> None:
    project, client = admin
    service = Service.objects.create(project=project, name="svc", image="busybox")
    for i in range(3):
        Trigger.objects.create(service=service, event_type=f"com.acme.{i}")
    response = client.post(
        reverse("console:trigger_create", args=[project.slug, service.name]), {"event_type": "com.acme.more"}
    )
    assert response.status_code == 400
    assert "at most 3 triggers" in response.content.decode()

    service_write(tmp_path, "more", manifest={"trigger_events": ["com.acme.x"]})
    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "k8x_apply",
            str(tmp_path),
            "--project",
            project.slug,
            "--no-cluster-validation",
            stdout=StringIO(),
            stderr=err,
        )
    assert "more/manifest.json: trigger_events: a project may have at most 3 triggers" in err.getvalue()
    assert "[rule triggers-cap]" in err.getvalue()
    assert Trigger.objects.filter(service__project=project).count() == 3


def test_project_pages_show_the_level_and_only_a_superuser_gets_the_change_link(admin: tuple[Project, Client]) -> None:
    project, client = admin
    html = client.get(reverse("console:project_detail", args=[project.slug])).content.decode()
    assert '<span class="mono" id="pod-security-level">restricted</span>' in html
    assert "/admin/k8x_core/project/" not in html
    root = User.objects.create_superuser(username="root-caps", password="caps-test-pw-2")
    superuser = Client()
    superuser.force_login(root)
    html = superuser.get(reverse("console:project_detail", args=[project.slug])).content.decode()
    assert f"/admin/k8x_core/project/{project.pk}/change/" in html
