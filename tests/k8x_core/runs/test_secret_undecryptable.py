"""A secret no configured key decrypts fails its run at launch with a clear
reason (naming the secret's key, never a value), before any cluster call, and
the service's queue moves on; it is not retried forever."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cryptography.fernet import Fernet

from k8x_core import kube
from k8x_core.models import Project, Run, RunStatus, Service, TriggerKind
from k8x_core.runs.configs import registry_login_set, secret_set
from k8x_core.runs.launch import LaunchResult, run_launch
from tests.k8x_core.hub.conftest import queued_run_ids

pytestmark = pytest.mark.django_db

PLAIN = "lost-key-secret-4411"


def test_undecryptable_secret_fails_the_run_with_the_reason(
    settings: Any, tmp_path: Any, queue_name: str, django_capture_on_commit_callbacks: Any
) -> None:
    lost = Fernet.generate_key().decode()
    current = list(settings.K8X_SECRETS_KEY)
    project = Project.objects.create(slug=f"u{uuid.uuid4().hex[:8]}")
    service = Service.objects.create(project=project, name="svc", image="busybox", max_concurrency=1)
    settings.K8X_SECRETS_KEY = [lost]
    secret_set(key="DB_PASSWORD", value=PLAIN, service=service)
    settings.K8X_SECRETS_KEY = current  # the key it was encrypted with is gone
    # No cluster: a launch that got as far as a Kubernetes call would fail differently.
    settings.KUBECONFIG = str(tmp_path / "no-such-kubeconfig")
    kube.api_client_reset()
    try:
        first, second = (
            Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.QUEUED)
            for _ in range(2)
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert run_launch(run_id=first.pk) == LaunchResult.FAILED
    finally:
        kube.api_client_reset()
    first.refresh_from_db()
    assert first.status == RunStatus.FAILED
    assert first.reason == "SecretUndecryptable"
    assert "'DB_PASSWORD'" in first.message and "K8X_SECRETS_KEY" in first.message
    assert PLAIN not in first.message
    assert first.finished_at is not None
    # Not stuck: the service's next run is on its way to a worker.
    second.refresh_from_db()
    assert second.status == RunStatus.QUEUED
    assert str(second.pk) in queued_run_ids(queue_name)
    assert run_launch(run_id=first.pk) == LaunchResult.SKIPPED  # final: a retry does nothing


def test_undecryptable_registry_login_fails_the_run_with_the_reason(settings: Any, tmp_path: Any) -> None:
    """Registry logins come with the launch's one scope read: one that no key
    decrypts fails the run the same way, naming its key."""
    lost = Fernet.generate_key().decode()
    current = list(settings.K8X_SECRETS_KEY)
    project = Project.objects.create(slug=f"u{uuid.uuid4().hex[:8]}")
    service = Service.objects.create(project=project, name="svc", image="busybox")
    settings.K8X_SECRETS_KEY = [lost]
    registry_login_set(key="PULL", server="registry.example.com", username="u", password=PLAIN, project=project)
    settings.K8X_SECRETS_KEY = current
    settings.KUBECONFIG = str(tmp_path / "no-such-kubeconfig")
    kube.api_client_reset()
    try:
        run = Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.QUEUED)
        assert run_launch(run_id=run.pk) == LaunchResult.FAILED
    finally:
        kube.api_client_reset()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.reason == "SecretUndecryptable"
    assert "'PULL'" in run.message
    assert PLAIN not in run.message
