"""The service form's server-side dry run against the real local cluster: errors at the field."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from k8x_core import kube
from k8x_core.models import Service
from tests.console.conftest import World, client_for

pytestmark = [pytest.mark.django_db, pytest.mark.cluster]

BUSYBOX = "localhost:5000/k8x/busybox:1"


@pytest.fixture
def on_cluster(settings: Any, kube_cluster: Any) -> None:
    settings.KUBECONFIG = kube_cluster.kubeconfig
    kube.api_client_reset()


def post(world: World, **data: str) -> Any:
    return client_for(world.admin).post(
        reverse("console:service_create", args=["acme"]), {"retries": "0", "active": "on", **data}
    )


def test_valid_service_is_saved(world: World, on_cluster: None) -> None:
    response = post(world, name="ok-svc", image=BUSYBOX, command="echo hi", resources='{"limits": {"memory": "64Mi"}}')
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Service.objects.get(project=world.acme, name="ok-svc").resources == {"limits": {"memory": "64Mi"}}


def test_cluster_refusal_shown_at_resources(world: World, on_cluster: None) -> None:
    response = post(world, name="bad-res", image=BUSYBOX, resources='{"limits": {"memory": "lots"}}')
    assert response.status_code == 200
    html = response.content.decode()
    errors = html.split('id="id_resources_errors"', 1)
    assert len(errors) == 2, "no error at the resources field"
    assert "Refused by the cluster" in errors[1][:2000] and "memory" in errors[1][:2000]
    assert not Service.objects.filter(name="bad-res").exists()


def test_cluster_refusal_shown_at_job_template(world: World, on_cluster: None) -> None:
    template = f"""apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      containers:
        - name: Not_A_Label
          image: {BUSYBOX}
"""
    response = post(world, name="bad-tpl", job_template=template)
    html = response.content.decode()
    assert 'id="id_job_template_errors"' in html
    assert "Refused by the cluster" in html and "Not_A_Label" in html
    assert not Service.objects.filter(name="bad-tpl").exists()


def test_cluster_down_saves_nothing(world: World, settings: Any, tmp_path: Any) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {}}]\n"
    )
    settings.KUBECONFIG = str(config)
    kube.api_client_reset()
    try:
        response = post(world, name="nocluster", image=BUSYBOX)
    finally:
        kube.api_client_reset()
    assert response.status_code == 200
    assert "the cluster could not check the Job" in response.content.decode()
    assert not Service.objects.filter(name="nocluster").exists()


def test_cancel_marks_the_run_cancelled(world: World, on_cluster: None) -> None:
    from k8x_core.models import Run

    client = client_for(world.user)
    response = client.post(reverse("console:run_cancel", args=[world.run.pk]), follow=True)
    assert "Run cancelled." in response.content.decode()
    run = Run.objects.get(pk=world.run.pk)
    assert run.status == "cancelled" and run.message == "cancelled by user1"
    again = client.post(reverse("console:run_cancel", args=[world.run.pk]), follow=True)
    assert "already ended" in again.content.decode()
