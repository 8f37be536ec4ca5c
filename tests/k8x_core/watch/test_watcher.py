"""What the watcher keeps of a Job or pod (``_slim``): less memory, the same observation."""

from __future__ import annotations

from typing import Any

from k8x_core.runs.logs import container_names
from k8x_core.watch.observe import run_observe
from k8x_core.watch.watcher import _run_id_of, _slim

EVENT = '{"data": "' + "x" * 60_000 + '"}'
LABELS = {"app.kubernetes.io/managed-by": "k8x", "k8x.io/run-id": "0b5c9c4e-7a43-4f7c-9d0e-6f1a8f1c2d3e"}


def _job() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "k8x-run-x", "uid": "u1", "labels": LABELS, "managedFields": [{"big": "x" * 1000}]},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "K8X_EVENT", "value": EVENT}]}]}}},
        "status": {
            "failed": 1,
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "late"}],
        },
    }


def _pod() -> dict[str, Any]:
    env = [{"name": "K8X_EVENT", "value": EVENT}]
    return {
        "metadata": {"name": "k8x-run-x-abc", "labels": LABELS, "managedFields": [{}]},
        "spec": {
            "initContainers": [{"name": "init", "env": env}],
            "containers": [{"name": "a", "image": "i", "env": env}],
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}],
        },
    }


def test_slim_job_and_pod_keep_what_the_watcher_reads() -> None:
    job, pod = _job(), _pod()
    slim_job, slim_pod = _slim("jobs", job), _slim("pods", pod)
    assert "spec" not in slim_job and "managedFields" not in slim_job["metadata"]
    assert slim_job["metadata"]["uid"] == "u1" and slim_job["apiVersion"] == "batch/v1"
    assert all("env" not in c for c in slim_pod["spec"]["containers"] + slim_pod["spec"]["initContainers"])
    assert "managedFields" not in slim_pod["metadata"]
    assert len(repr(slim_job)) < 1000 and len(repr(slim_pod)) < 1000
    assert _run_id_of(slim_job) == _run_id_of(job) and _run_id_of(slim_pod) == _run_id_of(pod)
    assert container_names(slim_pod) == container_names(pod) == ["init", "a"]
    assert run_observe(slim_job, [slim_pod]) == run_observe(job, [pod])
    # The objects from the API are left as they were.
    assert "env" in pod["spec"]["containers"][0] and "spec" in job
