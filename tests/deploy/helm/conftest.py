"""Fixtures for the Helm chart tests: the helm binary (built from its Go
module, cached by version) and kubectl/helm runners against the local cluster."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "k8x"
# Rendering needs image tags; the values a test renders with.
TEST_VALUES = ["--set", "image.tag=test", "--set", "redis.image.tag=test"]

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def helm_bin() -> str:
    out = subprocess.run(
        [str(REPO / "deploy" / "helm" / "build-helm.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    assert out.returncode == 0, f"build-helm.sh failed:\n{out.stderr[-3000:]}"
    path = out.stdout.strip().splitlines()[-1]
    assert Path(path).is_file(), f"build-helm.sh printed {path!r}"
    return path


@pytest.fixture(scope="session")
def helm(helm_bin: str) -> Runner:
    def run(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [helm_bin, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )

    return run


def kubectl_runner(kubeconfig: str) -> Runner:
    """kubectl of the local cluster's build (deploy/local/env.sh puts it on PATH)."""

    def run(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        script = 'eval "$(deploy/local/env.sh)"; export KUBECONFIG="$K"; exec kubectl "$@"'
        return subprocess.run(
            ["bash", "-c", script, "kubectl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=REPO,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "K": kubeconfig, "HOME": str(Path.home())},
        )

    return run
