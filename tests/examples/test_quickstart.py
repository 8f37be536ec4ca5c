"""The README's quickstart, run as written: the shell blocks marked `<!-- quickstart -->`
run in order in one bash session against a real K8X (this test's processes, not
`make up`; the blocks read K8X_URL and K8X_PROJECT), then the blocks marked
`<!-- quickstart-git -->` with a git daemon standing in for the user's git host."""

from __future__ import annotations

import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from k8x_core.catalog.git import repo_create
from k8x_core.models import Run, RunStatus, Service
from k8x_core.runs.logs import run_log_text
from tests.examples.conftest import REPO, K8x
from tests.k8x_core.catalog.conftest import GitServer, git_server  # noqa: F401  (fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]


def readme_blocks(marker: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    pattern = rf"^[ \t]*<!-- {re.escape(marker)} -->[ \t]*\n([ \t]*)```sh\n(.*?)\n[ \t]*```"
    return [textwrap.dedent(m.group(2)) for m in re.finditer(pattern, text, re.MULTILINE | re.DOTALL)]


def bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_readme_has_the_marked_blocks() -> None:
    blocks = readme_blocks("quickstart")
    assert len(blocks) == 4
    assert "k8x_apply examples/python-hello" in blocks[0]
    assert "/api/correlations/" in blocks[3]
    assert len(readme_blocks("quickstart-git")) == 2


def test_quickstart_runs_as_written(k8x: K8x, git_server: GitServer, tmp_path: Path) -> None:  # noqa: F811
    env = {
        **k8x.env,
        "K8X_URL": k8x.url,
        "K8X_PROJECT": k8x.project.slug,
        "GIT_AUTHOR_NAME": "k8x",
        "GIT_AUTHOR_EMAIL": "k8x@localhost",
        "GIT_COMMITTER_NAME": "k8x",
        "GIT_COMMITTER_EMAIL": "k8x@localhost",
    }
    key_file = tmp_path / "api-key"
    first = bash("\n".join(readme_blocks("quickstart")) + f'\nprintf %s "$K8X_API_KEY" > {key_file}\n', env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.search(r"^flow [0-9a-f-]+: succeeded$", first.stdout, re.MULTILINE), first.stdout + first.stderr
    assert '"greeting": "Hello, Ada!"' in first.stdout and '"secret_set": true' in first.stdout
    assert "not-a-real-token" not in first.stdout
    run = Run.objects.get(service__project=k8x.project, service__name="python-hello")
    assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0)

    # The user's git host, and the console's Repositories page adding it.
    git_server.create("my-services", tmp_path / "unused")
    repo_create(project=k8x.project, name="my-services", url=git_server.url("my-services"))
    git_env = {**env, "K8X_API_KEY": key_file.read_text(), "K8X_GIT_PUSH_URL": str(git_server.base / "my-services.git")}
    second = bash("\n".join(readme_blocks("quickstart-git")), git_env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert Service.objects.get(project=k8x.project, name="node-hello").active
    deadline = time.monotonic() + 180
    while not (runs := list(Run.objects.filter(service__project=k8x.project, service__name="node-hello"))) or (
        runs[0].status not in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)
    ):
        assert time.monotonic() < deadline, [(r.status, r.reason) for r in runs]
        time.sleep(0.5)
    assert (runs[0].status, runs[0].exit_code) == (RunStatus.SUCCEEDED, 0), run_log_text(runs[0].pk)
    assert '"greeting":"Hello, Grace!"' in run_log_text(runs[0].pk)
