"""The Node.js and Go helpers' own test suites (`node --test`, `go test`), run as
subprocesses: each must exit 0 having run every test it declares."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.sdk.conftest import SDK


def _go() -> str:
    for candidate in ("/usr/local/go/bin/go", shutil.which("go")):
        if candidate and Path(candidate).exists():
            return candidate
    raise AssertionError("the Go toolchain is needed for sdk/go (deploy/local/build.sh installs it at /usr/local/go)")


def test_node_helper_suite_passes_every_test() -> None:
    node = shutil.which("node")
    assert node, "node is needed for sdk/node (deploy/system-deps.sh installs Debian's nodejs)"
    declared = len(re.findall(r"^test\(", (SDK / "node" / "k8x.test.js").read_text(), re.MULTILINE))
    proc = subprocess.run(
        [node, "--test", "k8x.test.js"], cwd=SDK / "node", capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(rf"^# pass {declared}$", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^# fail 0$", proc.stdout, re.MULTILINE), proc.stdout
    assert declared >= 6


def test_go_helper_suite_passes_every_test() -> None:
    declared = len(
        re.findall(r"^func Test\w+\(t \*testing\.T\)", (SDK / "go" / "k8x" / "k8x_test.go").read_text(), re.M)
    )
    cache = Path(os.environ.get("K8X_CACHE_DIR", Path.home() / ".cache" / "k8x"))
    env = {
        **os.environ,
        # Standard library only: no module download ever, and a warm build cache works offline.
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "",
        "GOCACHE": str(cache / "go-build"),
        "CGO_ENABLED": "0",
    }
    proc = subprocess.run(
        [_go(), "test", "-count=1", "-v", "./..."], cwd=SDK / "go", env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = re.findall(r"^--- PASS: (Test\w+)", proc.stdout, re.MULTILINE)
    assert len(passed) == declared >= 5, proc.stdout
    assert "--- FAIL" not in proc.stdout
