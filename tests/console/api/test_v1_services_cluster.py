"""Services through the management API against the real local cluster: the same
form and the same server-side dry run as the console, errors at the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from k8x_core import kube
from k8x_core.events.apikeys import apikey_create
from k8x_core.models import Role, Service
from tests.console.conftest import World

pytestmark = [pytest.mark.django_db, pytest.mark.cluster]

BUSYBOX = "localhost:5000/k8x/busybox:1"
URL = "/api/v1/projects/acme/services"


@pytest.fixture
def on_cluster(settings: Any, kube_cluster: Any) -> None:
    settings.KUBECONFIG = kube_cluster.kubeconfig
    kube.api_client_reset()


@pytest.fixture
def admin_key(world: World) -> dict[str, str]:
    return {"X-API-Key": apikey_create(project=world.acme, name="ci", role=Role.ADMIN)[1]}


def call(method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    return getattr(Client(), method)(path, data=body, content_type="application/json", headers=headers)


def test_create_update_delete(world: World, on_cluster: None, admin_key: dict[str, str]) -> None:
    body = {
        "name": "ok-svc",
        "image": BUSYBOX,
        "command": ["sh", "-c", "echo hi"],
        "resources": {"limits": {"memory": "64Mi"}},
        "tags": ["a", "b"],
        "timeout_seconds": 60,
        "parameters_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
    created = call("post", URL, admin_key, body)
    assert created.status_code == 201, created.json()
    saved = Service.objects.get(project=world.acme, name="ok-svc")
    assert (saved.command, saved.resources, saved.tags, saved.timeout_seconds, saved.active) == (
        ["sh", "-c", "echo hi"],
        {"limits": {"memory": "64Mi"}},
        ["a", "b"],
        60,
        True,
    )
    assert created.json()["command"] == ["sh", "-c", "echo hi"]
    patched = call("patch", f"{URL}/ok-svc", admin_key, {"active": False, "timeout_seconds": None})
    assert patched.status_code == 200, patched.json()
    saved.refresh_from_db()
    # Only what was sent changed.
    assert (saved.active, saved.timeout_seconds, saved.command) == (False, None, ["sh", "-c", "echo hi"])
    assert call("delete", f"{URL}/ok-svc", admin_key, None).status_code == 204
    assert not Service.objects.filter(name="ok-svc").exists()


def test_cluster_refusal_at_the_field(world: World, on_cluster: None, admin_key: dict[str, str]) -> None:
    refused = call(
        "post", URL, admin_key, {"name": "bad-res", "image": BUSYBOX, "resources": {"limits": {"memory": "lots"}}}
    )
    assert refused.status_code == 400
    assert refused.json()["field"] == "resources"
    assert refused.json()["error"].startswith("refused by the cluster: ")
    assert not Service.objects.filter(name="bad-res").exists()
    template = f"""apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      restartPolicy: Sometimes
      containers:
        - name: main
          image: {BUSYBOX}
"""
    refused = call("post", URL, admin_key, {"name": "bad-tpl", "job_template": template})
    assert refused.status_code == 400 and refused.json()["field"] == "job_template", refused.json()


def test_create_from_a_template_file(world: World, on_cluster: None, admin_key: dict[str, str], tmp_path: Path) -> None:
    """What the README's curl example does: a Job template file as the body's job_template."""
    template = f"""apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      containers:
        - name: main
          image: {BUSYBOX}
          command: ["sh", "-c", "echo from a template"]
"""
    created = call("post", URL, admin_key, {"name": "from-file", "job_template": template})
    assert created.status_code == 201, created.json()
    assert Service.objects.get(name="from-file").job_template == template.strip()  # the form strips, as in the console


def test_cluster_down_saves_nothing(world: World, settings: Any, tmp_path: Path, admin_key: dict[str, str]) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {}}]\n"
    )
    settings.KUBECONFIG = str(config)
    kube.api_client_reset()
    try:
        response = call("post", URL, admin_key, {"name": "nocluster", "image": BUSYBOX})
    finally:
        kube.api_client_reset()
    assert response.status_code == 503 and response.json()["field"] == "cluster"
    assert not Service.objects.filter(name="nocluster").exists()
