"""deploy/k8x.sh reads its processes from deploy/Procfile: every entry there is
one it starts, stops and reports (a name the script's parser skipped would be a
process `make up` silently never runs)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def procfile_names() -> list[str]:
    names = []
    for line in (REPO / "deploy" / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, command = line.partition(":")
            assert sep and command.strip(), f"Procfile line without 'name: command': {line!r}"
            assert re.fullmatch(r"[a-z][a-z0-9_-]*", name), f"Procfile name {name!r}"
            names.append(name)
    return names


def test_status_reports_every_procfile_entry(tmp_path: Path) -> None:
    names = procfile_names()
    assert {"web", "hub", "worker", "watcher", "scheduler", "reconciler"} <= set(names)
    out = subprocess.run(
        ["bash", str(REPO / "deploy" / "k8x.sh"), "status"],
        env={"PATH": "/usr/bin:/bin", "K8X_STATE_DIR": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    reported = [line.split(":", 1)[0] for line in out.splitlines() if line.endswith(": stopped")]
    assert reported[: len(names)] == names
