"""`make deploy` end to end: K8X installed with Helm in the local cluster
answers on its console, turns an event sent to its web Service into a run
whose stored log shows the container contract, takes the run's follow-up
event through its own Service, and `make undeploy` removes it.

It deploys the release `k8x` in `k8x-system` (the one `make deploy` manages)
and removes it at the end. Extra settings reach deploy.sh through the
environment (K8X_HELM_ARGS, K8X_POD_RELAY_PORTS)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from typing import Any

import pytest
import requests

from tests.cluster_fixtures import KubeCluster
from tests.deploy.helm.conftest import REPO, Runner, kubectl_runner

pytestmark = [pytest.mark.cluster, pytest.mark.kafka, pytest.mark.timeout(1500)]

NS = "k8x-system"
SERVICE_YAML = """\
apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: localhost:5000/k8x/busybox:1
          command:
            - sh
            - -c
            - |
              env | grep '^K8X_' | grep -v TOKEN | sort
              wget -q -O- --header "Authorization: Bearer $K8X_RUN_TOKEN" \\
                --header 'Content-Type: application/json' \\
                --post-data '{"event_type": "com.k8x.e2e.pong", "event_source": "/e2e-run", "payload": {}}' \\
                "$K8X_EVENTS_URL/simple"
"""


def deploy_sh(command: str, kubeconfig: str) -> str:
    out = subprocess.run(
        [str(REPO / "deploy" / "helm" / "deploy.sh"), command],
        env={**os.environ, "KUBECONFIG": kubeconfig},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert out.returncode == 0, f"deploy.sh {command} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


def poll(what: str, fn: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_make_deploy_runs_an_event_and_undeploys(kube_cluster: KubeCluster, helm: Runner) -> None:
    kubectl = kubectl_runner(kube_cluster.admin_kubeconfig)
    project = f"e2e-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    out = deploy_sh("deploy", kube_cluster.admin_kubeconfig)
    deploy_seconds = time.monotonic() - t0
    console = re.search(r"console:\s+(http://\S+)", out)
    assert console, out
    base = console.group(1)
    try:
        # The console answers (login page) and is ready (database and Redis).
        assert requests.get(f"{base}/login/", timeout=10).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=10).json() == {"ready": True, "problems": {}}

        # A project with one service, applied and keyed from inside the web pod.
        setup = (
            "set -e; d=$(mktemp -d); mkdir $d/echo; cat > $d/echo/deployment.yaml; "
            'printf \'{"name": "echo", "type": "k8x_job", "description": "e2e", '
            '"trigger_events": ["com.k8x.e2e.ping"]}\' > $d/echo/manifest.json; '
            f"python3 manage.py k8x_apply $d --project {project} >/dev/null; "
            f"python3 manage.py k8x_apikey --project {project} --name e2e 2>/dev/null"
        )
        res = kubectl("-n", NS, "exec", "-i", "deploy/k8x-web", "--", "sh", "-c", setup, stdin=SERVICE_YAML)
        assert res.returncode == 0, res.stderr
        key = res.stdout.strip().splitlines()[-1]
        headers = {"X-API-Key": key}

        sent = requests.post(
            f"{base}/api/events/simple",
            json={"event_type": "com.k8x.e2e.ping", "event_source": "/e2e", "payload": {"n": 7}},
            headers=headers,
            timeout=10,
        )
        assert sent.status_code == 202, sent.text
        cid = sent.json()["correlation_id"]

        def runs() -> list[dict[str, Any]] | None:
            resp = requests.get(f"{base}/api/correlations/{cid}", headers=headers, timeout=10)
            if resp.status_code != 200:
                return None
            found = resp.json().get("runs", [])
            return found if found and all(r["status"] in ("succeeded", "failed", "timed_out") for r in found) else None

        finished = poll("the run to finish", runs, timeout=180)
        run = finished[0]
        assert run["status"] == "succeeded", run
        log = requests.get(f"{base}/api/runs/{run['id']}/log", headers=headers, timeout=10).text
        assert f"K8X_RUN_ID={run['id']}" in log, log
        assert f"K8X_PROJECT={project}" in log and "K8X_EVENT_TYPE=com.k8x.e2e.ping" in log, log
        assert "K8X_PARAM_N=7" in log, log
        service_ip = kubectl("-n", NS, "get", "service", "k8x-web", "-o", "jsonpath={.spec.clusterIP}").stdout
        assert f"K8X_EVENTS_URL=http://{service_ip}:8000/api/events" in log, log

        # The run's follow-up reached the in-cluster web through its Service.
        def follow_up() -> bool:
            body = requests.get(f"{base}/api/correlations/{cid}", headers=headers, timeout=10).json()
            return any(e.get("type") == "com.k8x.e2e.pong" for e in body.get("events", []))

        poll("the follow-up event in the correlation", follow_up, timeout=60)
    finally:
        deploy_sh("undeploy", kube_cluster.admin_kubeconfig)
        # The run's namespace (chart default projectNamespacePrefix k8x-ic).
        kubectl("delete", "namespace", f"k8x-ic-{project}", "--ignore-not-found", "--wait=false")
    status = helm("status", "k8x", "-n", NS, "--kubeconfig", kube_cluster.admin_kubeconfig)
    assert status.returncode != 0 and "not found" in status.stderr
    pods = kubectl("-n", NS, "get", "pods", "-l", "app.kubernetes.io/instance=k8x", "-o", "json")
    assert pods.returncode == 0 and json.loads(pods.stdout)["items"] == [], pods.stdout
    print(f"make deploy took {deploy_seconds:.0f}s")
