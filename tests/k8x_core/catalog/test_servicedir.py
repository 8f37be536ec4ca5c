"""Reading and validating service directories (no database, no cluster)."""

from __future__ import annotations

from pathlib import Path

import yaml

from k8x_core.catalog.servicedirs import SpecError, servicedir_load
from tests.k8x_core.catalog.conftest import service_write


def _load(root: Path):
    return servicedir_load(root=root, validate_on_cluster=False)


def _problems(errors: list[SpecError]) -> set[tuple[str, str]]:
    return {(e.file, e.field) for e in errors}


def test_valid_directory_gives_a_spec_with_every_field(tmp_path: Path) -> None:
    service_write(
        tmp_path,
        "orders",
        manifest={
            "active": False,
            "allow_manual_triggering": False,
            "trigger_events": ["com.acme.order.*", "com.acme.refund"],
            "tags": ["shop"],
            "schedule": "*/5 * * * *",
            "timeout": 60,
            "retries": 2,
            "concurrency": 3,
        },
        parameters={"type": "object", "properties": {"n": {"type": "integer"}}},
        configs={"COLOR": "blue", "COUNT": 3, "DEBUG": True},
    )
    (tmp_path / "docs").mkdir()  # no manifest: not a service
    (tmp_path / ".github").mkdir()
    loaded = _load(tmp_path)
    assert loaded.errors == []
    [spec] = loaded.specs
    assert spec.name == "orders"
    assert spec.active is False and spec.allow_manual_triggering is False
    assert spec.trigger_events == ["com.acme.order.*", "com.acme.refund"]
    assert (spec.timeout_seconds, spec.retries, spec.max_concurrency, spec.schedule) == (60, 2, 3, "*/5 * * * *")
    assert spec.configs == {"COLOR": "blue", "COUNT": "3", "DEBUG": "true"}
    assert spec.parameters_schema["properties"]["n"] == {"type": "integer"}
    assert "kind: Job" in spec.job_template


def test_every_problem_is_reported_with_file_and_field(tmp_path: Path) -> None:
    service_write(tmp_path, "badjson", raw_manifest='{"name": "badjson", "type": ')
    service_write(
        tmp_path,
        "badfields",
        manifest={"timeout": "ten", "retries": -1, "colour": "red", "type": "k8x_cron", "schedule": "every day"},
    )
    service_write(tmp_path, "badjob", deployment="apiVersion: v1\nkind: Deployment\nspec: {}\n")
    service_write(tmp_path, "badyaml", deployment="kind: Job\n  spec: [\n")
    service_write(tmp_path, "noimage", deployment="kind: Pod\nspec:\n  containers:\n    - name: main\n")
    service_write(tmp_path, "badparams", parameters={"type": "objekt"})
    service_write(tmp_path, "badconfigs", configs={"K8X_RUN_ID": "x", "1BAD": "y", "NESTED": {"a": 1}})
    service_write(tmp_path, "Bad_Name", manifest={"name": "Bad_Name", "trigger_events": ["has space", 3]})
    loaded = _load(tmp_path)
    assert loaded.specs == []
    problems = _problems(loaded.errors)
    assert ("badjson/manifest.json", "") in problems
    assert {
        ("badfields/manifest.json", "timeout"),
        ("badfields/manifest.json", "retries"),
        ("badfields/manifest.json", "colour"),
        ("badfields/manifest.json", "type"),
        ("badfields/manifest.json", "schedule"),
    } <= problems
    assert ("badjob/deployment.yaml", "kind") in problems
    assert ("badyaml/deployment.yaml", "") in problems
    assert ("noimage/deployment.yaml", "spec.containers[0].image") in problems
    assert ("badparams/parameters.json", "type") in problems
    assert {
        ("badconfigs/configs.json", "K8X_RUN_ID"),
        ("badconfigs/configs.json", "1BAD"),
        ("badconfigs/configs.json", "NESTED"),
    } <= problems
    assert {
        ("Bad_Name/manifest.json", "name"),
        ("Bad_Name/manifest.json", "trigger_events[0]"),
        ("Bad_Name/manifest.json", "trigger_events[1]"),
    } <= problems
    messages = {(e.file, e.field): e.message for e in loaded.errors}
    assert messages[("badfields/manifest.json", "timeout")] == "must be an integer, not a string"
    assert messages[("badfields/manifest.json", "colour")].startswith("unknown field")
    assert "not a valid cron expression" in messages[("badfields/manifest.json", "schedule")]


def test_missing_deployment_and_duplicate_names(tmp_path: Path) -> None:
    service_write(tmp_path, "a", manifest={"name": "same"})
    service_write(tmp_path, "b", manifest={"name": "same"})
    service_write(tmp_path, "c")
    (tmp_path / "c" / "deployment.yaml").unlink()
    loaded = _load(tmp_path)
    problems = _problems(loaded.errors)
    assert ("b/manifest.json", "name") in problems
    assert ("c/deployment.yaml", "") in problems


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("secret: 1\n")
    root = tmp_path / "repo"
    service_write(root, "svc")
    (root / "svc" / "deployment.yaml").unlink()
    (root / "svc" / "deployment.yaml").symlink_to(outside)
    loaded = _load(root)
    assert loaded.specs == []
    assert ("svc/deployment.yaml", "") in _problems(loaded.errors)
    assert "symbolic links" in loaded.errors[0].message


def test_pod_and_pod_template_are_stored_as_jobs(tmp_path: Path) -> None:
    service_write(
        tmp_path, "pod", deployment="apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - {name: m, image: busybox}\n"
    )
    service_write(
        tmp_path, "tpl", deployment="template:\n  spec:\n    containers:\n      - {name: m, image: busybox}\n"
    )
    loaded = _load(tmp_path)
    assert loaded.errors == []
    for spec in loaded.specs:
        job = yaml.safe_load(spec.job_template)
        assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
