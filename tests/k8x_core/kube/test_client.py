"""k8x_core.kube against the real local cluster: error mapping and the retry helper."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8x_core import kube
from k8x_core.kube import client
from tests.cluster_fixtures import admin_secret_read

pytestmark = pytest.mark.cluster


def _job(name: str, **pod: Any) -> dict[str, Any]:
    spec = {"restartPolicy": "Never", "containers": [{"name": "m", "image": "localhost:5000/k8x/busybox:1"}], **pod}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "k8x"}},
        "spec": {"template": {"spec": spec}},
    }


@pytest.fixture
def live(settings: Any, kube_cluster: Any) -> Any:
    settings.KUBECONFIG = kube_cluster.kubeconfig
    kube.api_client_reset()
    yield settings
    kube.api_client_reset()


def test_errors_are_typed_with_the_api_message(live: Any, kube_namespace: str) -> None:
    name = f"client-{uuid.uuid4().hex[:8]}"
    kube.managed_namespace_ensure(name=kube_namespace)  # as the launcher does: K8X works only in namespaces it manages
    with pytest.raises(kube.KubeNotFound):
        kube.job_get(namespace=kube_namespace, name=name)
    created = kube.job_create(namespace=kube_namespace, job=_job(name, activeDeadlineSeconds=5))
    assert created["metadata"]["name"] == name
    with pytest.raises(kube.KubeConflict):
        kube.job_create(namespace=kube_namespace, job=_job(name))
    with pytest.raises(kube.KubeInvalid, match="restartPolicy") as exc:
        kube.job_dry_run(namespace=kube_namespace, job=_job("x", restartPolicy="Always"))
    assert exc.value.status == 422
    with pytest.raises(kube.KubeInvalid, match=r'unknown field "spec\.template\.spec\.bogus"'):
        kube.job_dry_run(namespace=kube_namespace, job=_job("x", bogus=1))
    # A dry run creates nothing; a namespace that does not exist yet is not the Job's fault.
    kube.job_dry_run(namespace=f"k8x-missing-{uuid.uuid4().hex[:6]}", job=_job("ok"))
    assert kube.job_delete(namespace=kube_namespace, name=name)
    assert not kube.job_delete(namespace=kube_namespace, name=f"gone-{uuid.uuid4().hex[:6]}")


def test_namespace_and_secret_apply_are_idempotent(live: Any, kube_namespace: str, kube_api: Any) -> None:
    assert not kube.managed_namespace_ensure(name=kube_namespace)
    kube.secret_apply(namespace=kube_namespace, name="s1", string_data={"A": "1", "B": "2"})
    kube.secret_apply(namespace=kube_namespace, name="s1", string_data={"A": "3"})
    secret = admin_secret_read(kube_api, kube_namespace, "s1")
    assert set(secret["data"]) == {"A"}  # a removed key is removed
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "k8x"


def test_unreachable_api_is_retried_until_the_deadline(live: Any, tmp_path: Path, kube_cluster: Any) -> None:
    config = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"  # nothing listens there
    bad = tmp_path / "kubeconfig"
    bad.write_text(yaml.safe_dump(config))
    live.KUBECONFIG = str(bad)
    kube.api_client_reset()
    t0 = time.monotonic()
    with pytest.raises(kube.KubeUnavailable, match="unavailable after") as exc:
        kube.call("GET", "/version", deadline_seconds=1.0)
    assert time.monotonic() - t0 >= 1.0
    assert "attempts" in str(exc.value)


def test_retry_helper_recovers_when_the_api_comes_back(live: Any) -> None:
    calls = {"n": 0}
    real = kube.client.request_once

    def flaky() -> Any:
        calls["n"] += 1
        if calls["n"] < 3:
            # What request_once raises for 429/5xx/connection errors.
            raise kube.client._Retryable("HTTP 503: the server is currently unable to handle the request")
        return real("GET", "/version")

    assert kube.kube_retry(flaky, what="version", deadline_seconds=10)["gitVersion"].startswith("v1.")
    assert calls["n"] == 3


def test_bearer_token_is_refreshed_at_most_every_few_seconds(live: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    config = client.api_client().configuration
    refreshed: list[float] = []

    def refresh(configuration: Any) -> None:
        refreshed.append(time.monotonic())
        configuration.api_key["authorization"] = f"token-{len(refreshed)}"

    monkeypatch.setattr(config, "refresh_api_key_hook", refresh)
    monkeypatch.setattr(config, "api_key", {"authorization": "token-0"})
    monkeypatch.setattr(config, "api_key_prefix", {"authorization": "Bearer"})
    monkeypatch.setattr(client, "_auth", None)
    headers = [client._prepare("GET", "/api", None, "application/json")[1] for _ in range(50)]
    assert len(refreshed) == 1
    assert {h["authorization"] for h in headers} == {"Bearer token-1"}
    monkeypatch.setattr(client, "AUTH_REFRESH_SECONDS", 0.0)
    assert client._prepare("GET", "/api", None, "application/json")[1]["authorization"] == "Bearer token-2"
    assert len(refreshed) == 2
