"""The console's service form against hostile input: a cron that never fires
and a YAML alias bomb in the Job template are refused at the field, quickly,
in bounded memory, and nothing is saved."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from django.urls import reverse

from k8x_core.models import Service, Webhook
from tests.console.conftest import World, client_for
from tests.k8x_core.test_yamlsafe import BOMB

pytestmark = pytest.mark.django_db


def post(world: World, **data: str) -> Any:
    return client_for(world.admin).post(
        reverse("console:service_create", args=["acme"]),
        {"retries": "0", "active": "on", "image": "busybox", **data},
    )


def field_errors(html: str, field: str) -> str:
    parts = html.split(f'id="id_{field}_errors"', 1)
    assert len(parts) == 2, f"no error at the {field} field"
    return parts[1][:2000]


def test_cron_that_never_fires_is_refused_at_the_field(world: World) -> None:
    response = post(world, name="feb31", schedule="0 0 31 2 *")
    assert response.status_code == 200
    errors = field_errors(response.content.decode(), "schedule")
    assert "never fires" in errors and "0 0 31 2 *" in errors
    assert not Service.objects.filter(name="feb31").exists()


def test_alias_bomb_in_job_template_is_refused_fast(world: World) -> None:
    client = client_for(world.admin)
    url = reverse("console:service_create", args=["acme"])
    tracemalloc.start()
    start = time.monotonic()
    try:
        response = client.post(
            url, {"retries": "0", "active": "on", "image": "busybox", "name": "bomb", "job_template": BOMB}
        )
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200
    errors = field_errors(response.content.decode(), "job_template")
    assert "job template, line 1: YAML anchors and aliases are not allowed" in errors
    assert elapsed < 1.0, elapsed
    assert peak < 20 * 1024 * 1024, peak
    assert not Service.objects.filter(name="bomb").exists()


def test_webhook_with_a_reserved_source_is_refused_at_the_field(world: World) -> None:
    response = client_for(world.owner).post(
        reverse("console:project_webhooks", args=["acme"]),
        {"slug": "sneaky", "event_type": "com.acme.x", "event_source": "k8x/scheduler"},
    )
    assert response.status_code == 200
    errors = field_errors(response.content.decode(), "event_source")
    assert "reserved" in errors
    assert not Webhook.objects.filter(slug="sneaky").exists()
