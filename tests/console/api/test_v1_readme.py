"""The README's management API example works as printed: curl and jq against a
live server (and the real cluster for the service's dry run)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from k8x_core import kube
from k8x_core.events.apikeys import apikey_create
from k8x_core.models import Role, Run, RunStatus, Secret, Service
from k8x_core.projects import project_ensure
from k8x_core.runs.logs import run_log_append

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

README = Path(__file__).resolve().parents[3] / "README.md"


def example(name: str) -> str:
    """The shell block after ``<!-- management-api-example: name -->``."""
    match = re.search(rf"<!-- management-api-example: {name} -->\n```sh\n(.*?)```", README.read_text(), re.S)
    assert match, f"README has no management API example {name!r}"
    return match.group(1)


def bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_readme_example(live_server: Any, settings: Any, kube_cluster: Any, queue_name: str, tmp_path: Path) -> None:
    settings.KUBECONFIG = kube_cluster.kubeconfig
    kube.api_client_reset()
    project = project_ensure(slug="acme")[0]
    env = {"KEY": apikey_create(project=project, name="ops", role=Role.OWNER)[1], "K8X": live_server.url}
    (tmp_path / "job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers:\n"
        "        - name: main\n          image: localhost:5000/k8x/busybox:1\n"
        "          command: [sh, -c, 'echo sent']\n"
    )
    (tmp_path / "smtp-password.txt").write_text("pa ss\n")
    create = example("create")
    out = bash(create, tmp_path, env)
    service = Service.objects.get(project=project, name="send-invoice")
    assert service.parameters_schema["required"] == ["amount"]
    assert service.triggers.get().cel_expression == "event.data.amount > 100"
    assert Secret.objects.get(service=service, key="SMTP_PASSWORD").reveal() == "pa ss\n"
    assert "pa ss" not in out
    lines = out.strip().splitlines()
    assert json.loads(lines[0])["name"] == "send-invoice" and json.loads(lines[2])["key"] == "SMTP_PASSWORD"
    run_id = lines[-1]
    run = Run.objects.get(pk=run_id)
    assert (run.service, run.params, run.status) == (service, {"amount": 120}, RunStatus.QUEUED)
    # What the launcher and the watcher would do (no worker runs here).
    assert run_log_append(run_id=run.pk, text="2026-01-01T00:00:00Z sent\n")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, exit_code=0, finished_at=timezone.now())
    follow = create.splitlines()[0] + "\n" + example("follow")
    followed = bash(follow, tmp_path, {**env, "RUN": run_id}).splitlines()
    assert json.loads(followed[0]) == {"status": "succeeded", "exit_code": 0, "reason": ""}
    assert followed[1].endswith("sent")
