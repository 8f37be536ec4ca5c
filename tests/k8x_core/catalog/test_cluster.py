"""Git deployment against the local Kubernetes cluster: the server-side dry run
of deployment.yaml, and a synced service run by an event."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from k8x_core import kube
from k8x_core.catalog.git import repo_create, repo_sync
from k8x_core.catalog.servicedirs import servicedir_load
from k8x_core.events.ce import ce_new, ce_to_kafka
from k8x_core.hub.loop import hub_process_batch
from k8x_core.hub.matching import trigger_index_load
from k8x_core.kafka.consumer import HubMessage
from k8x_core.models import Project, Run, RunStatus, Service, SyncRecord, run_job_name
from tests.cluster_fixtures import admin_namespace_delete
from tests.k8x_core.catalog.conftest import GitServer, service_write
from worker.jobs import launch_run

pytestmark = pytest.mark.cluster


def test_server_side_dry_run_refuses_what_the_cluster_would(kube_cluster: Any, tmp_path: Path) -> None:
    service_write(tmp_path, "good")
    service_write(
        tmp_path,
        "unknownfield",
        deployment=(
            "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers:\n"
            "        - name: main\n          image: busybox\n          resourcez: {}\n"
        ),
    )
    service_write(
        tmp_path,
        "badname",
        deployment=(
            "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      restartPolicy: Always\n"
            "      containers:\n        - name: Not_A_Label\n          image: busybox\n"
        ),
    )
    loaded = servicedir_load(root=tmp_path, namespace="k8x-gitdeploy-does-not-exist")
    by_file = {e.file: e.message for e in loaded.errors}
    assert set(by_file) == {"unknownfield/deployment.yaml", "badname/deployment.yaml"}
    assert 'unknown field "spec.template.spec.containers[0].resourcez"' in by_file["unknownfield/deployment.yaml"]
    assert "Not_A_Label" in by_file["badname/deployment.yaml"]
    assert "restartPolicy" in by_file["badname/deployment.yaml"]


@pytest.mark.django_db(transaction=True)
def test_a_synced_service_runs_on_an_event(
    kube_cluster: Any, kube_api: Any, git_server: GitServer, tmp_path: Path, settings: Any
) -> None:
    """Acceptance: a repository with two services syncs; an event then runs the service on the cluster."""

    queue = f"k8x-test-gitdeploy-{secrets.token_hex(5)}"
    settings.K8X_QUEUE = queue
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue: {"URL": settings.REDIS_URL}}
    project = Project.objects.create(slug=f"gitdeploy-e2e-{secrets.token_hex(3)}")
    work = git_server.create("services", tmp_path / "work")
    service_write(work.path, "orders", manifest={"trigger_events": ["com.acme.gitdeploy.order.*"]})
    service_write(work.path, "billing", manifest={"trigger_events": ["com.acme.gitdeploy.invoice"]})
    commit = work.commit_push("two services")
    repo = repo_create(project=project, name="services", url=git_server.url("services"))
    try:
        record = repo_sync(repo=repo)  # with the server-side dry run
        assert record.status == SyncRecord.Status.APPLIED, record.errors
        orders = Service.objects.get(project=project, name="orders")
        assert orders.source_commit == commit

        ev = ce_new(type="com.acme.gitdeploy.order.created", source="/tests/gitdeploy", data={"order": 7})
        key, headers, value = ce_to_kafka(ev)
        hub_process_batch(
            messages=[HubMessage(topic="t", partition=0, offset=0, key=key, headers=list(headers), value=value)],
            index=trigger_index_load(),
        )
        run = Run.objects.get(event__ce_id=ev["id"])
        assert run.service_id == orders.pk
        assert not Run.objects.filter(service__name="billing", service__project=project).exists()

        launch_run(str(run.pk))

        name = run_job_name(run.pk)
        deadline = time.monotonic() + 180
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = kube.job_get(namespace=project.namespace, name=name)
            if (job.get("status") or {}).get("succeeded") or (job.get("status") or {}).get("failed"):
                break
            time.sleep(1)
        assert (job.get("status") or {}).get("succeeded") == 1, job.get("status")
        pods, _ = kube.pod_list(namespace=project.namespace, label_selector=f"job-name={name}")
        log = kube.pod_log_read(namespace=project.namespace, name=pods[0]["metadata"]["name"])
        assert "hello from orders" in log
        assert "K8X_EVENT_TYPE=com.acme.gitdeploy.order.created" in log
        run.refresh_from_db()
        assert run.status != RunStatus.QUEUED
    finally:
        # Cleanup is admin work: K8X itself never deletes namespaces.
        kube.namespace_forget(name=project.namespace)
        admin_namespace_delete(kube_api, project.namespace)
