"""Fixtures for git deployment tests: service directories on disk, and a real
git server (``git daemon``) on loopback with bare repositories."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

JOB_YAML = """\
apiVersion: batch/v1
kind: Job
metadata:
  labels:
    team: demo
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: localhost:5000/k8x/busybox:1
          command: ["sh", "-c", "echo hello from {name}; env | grep ^K8X_EVENT_TYPE"]
"""


def service_write(
    root: Path,
    directory: str,
    *,
    manifest: dict[str, Any] | None = None,
    deployment: str | None = None,
    parameters: Any = None,
    configs: Any = None,
    raw_manifest: str | None = None,
) -> Path:
    """Write one service directory; ``manifest`` is merged over a valid default."""
    d = root / directory
    d.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {"name": directory, "type": "k8x_job", "description": f"the {directory} service"}
    base.update(manifest or {})
    (d / "manifest.json").write_text(raw_manifest if raw_manifest is not None else json.dumps(base, indent=2))
    (d / "deployment.yaml").write_text(deployment if deployment is not None else JOB_YAML.format(name=directory))
    if parameters is not None:
        (d / "parameters.json").write_text(parameters if isinstance(parameters, str) else json.dumps(parameters))
    if configs is not None:
        (d / "configs.json").write_text(configs if isinstance(configs, str) else json.dumps(configs))
    return d


def _git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@dataclass
class WorkRepo:
    """A working clone that pushes to a bare repository served by the fixture."""

    path: Path
    push_url: str

    def commit_push(self, message: str, *, branch: str = "main") -> str:
        _git("add", "-A", cwd=self.path)
        _git("commit", "-q", "--allow-empty", "-m", message, cwd=self.path)
        _git("push", "-q", self.push_url, f"HEAD:refs/heads/{branch}", cwd=self.path)
        return _git("rev-parse", "HEAD", cwd=self.path).strip()


@dataclass
class GitServer:
    base: Path
    port: int

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def create(self, name: str, workdir: Path) -> WorkRepo:
        bare = self.base / f"{name}.git"
        _git("init", "-q", "--bare", "-b", "main", str(bare), cwd=self.base)
        workdir.mkdir(parents=True, exist_ok=True)
        _git("init", "-q", "-b", "main", cwd=workdir)
        # Pushing to the bare repository directly keeps the test independent of receive-pack over git://.
        return WorkRepo(path=workdir, push_url=str(bare))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    base = tmp_path / "served"
    base.mkdir()
    port = _free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            f"--base-path={base}",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("git daemon did not start") from None
            time.sleep(0.05)
    yield GitServer(base=base, port=port)
    proc.terminate()
    proc.wait(timeout=10)
