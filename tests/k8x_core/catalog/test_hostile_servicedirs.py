"""Service directories written by a hostile project: a YAML alias bomb and a
cron that never fires are refused by `k8x_apply --dry-run`, naming the file,
line and field, quickly and in bounded memory."""

from __future__ import annotations

import time
import tracemalloc
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from k8x_core.catalog.servicedirs import servicedir_load
from k8x_core.models import Project, Service
from tests.k8x_core.catalog.conftest import service_write
from tests.k8x_core.test_yamlsafe import BOMB

pytestmark = pytest.mark.django_db


def _apply_dry_run(root: Path) -> tuple[str, float, int]:
    """(stderr, seconds, peak traced bytes) of a refused `k8x_apply --dry-run`."""
    err = StringIO()
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(CommandError, match="nothing applied"):
            call_command(
                "k8x_apply", str(root), "--project", "hostile-apply", "--dry-run", "--no-cluster-validation", stderr=err
            )
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return err.getvalue(), elapsed, peak


def test_alias_bomb_in_deployment_yaml_is_refused_fast(tmp_path: Path) -> None:
    service_write(tmp_path, "bomb", deployment=BOMB)
    service_write(tmp_path, "fine")
    stderr, elapsed, peak = _apply_dry_run(tmp_path)
    assert "bomb/deployment.yaml, line 1: YAML anchors and aliases are not allowed (anchor &a)" in stderr
    assert elapsed < 1.0, elapsed
    assert peak < 20 * 1024 * 1024, peak
    assert not Project.objects.filter(slug="hostile-apply").exists()
    assert not Service.objects.exists()


def test_alias_deep_in_a_valid_job_is_refused_at_its_line(tmp_path: Path) -> None:
    job = (
        "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n"
        "      containers:\n        - name: main\n          image: &img busybox\n"
        "        - name: side\n          image: *img\n"
    )
    service_write(tmp_path, "aliased", deployment=job)
    loaded = servicedir_load(root=tmp_path, validate_on_cluster=False)
    [error] = loaded.errors
    assert error.file == "aliased/deployment.yaml"
    assert "line 9: YAML anchors and aliases are not allowed (anchor &img)" in error.message
    assert loaded.specs == []


def test_cron_that_never_fires_is_refused_by_apply(tmp_path: Path) -> None:
    service_write(tmp_path, "feb31", manifest={"schedule": "0 0 31 2 *"})
    stderr, _, _ = _apply_dry_run(tmp_path)
    assert "feb31/manifest.json" in stderr and "schedule" in stderr
    assert "'0 0 31 2 *' never fires" in stderr
