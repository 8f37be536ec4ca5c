"""A project's run defaults and placement: the pure functions and the validator's rules
(no cluster, no database)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import yaml

from k8x_core.checks import check_settings
from k8x_core.models import Project, Run, Service, TriggerKind
from k8x_core.runs import jobspec, validation
from k8x_core.runs.configs import RegistryLogin
from k8x_core.runs.defaults import (
    PULL_SECRET_NAME,
    RunDefaults,
    job_defaults_apply,
    node_selector_problems,
    project_placement,
    project_run_defaults,
    resources_problems,
    timeout_problems,
    tolerations_problems,
)
from k8x_core.runs.registry import dockerconfigjson

POD = "spec.template.spec"
TAINT = {"key": "pool", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}


def _project(**fields: Any) -> Project:
    return Project(id=7, slug="shop", namespace="k8x-shop", **fields)


def _job(pod_spec: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    pod = pod_spec or {"containers": [{"name": "main", "image": "busybox"}]}
    return {"spec": {**spec, "template": {"spec": pod}}}


def _template(pod_spec: dict[str, Any]) -> str:
    base = {"containers": [{"name": "main", "image": "busybox"}]}
    return yaml.safe_dump(
        {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {**base, **pod_spec}}}}
    )


def _rules(problems: list[validation.Problem]) -> set[tuple[str, str]]:
    return {(p.path, p.rule) for p in problems}


# --- checking values -----------------------------------------------------------------------


def test_bad_default_resources_name_the_field() -> None:
    problems = resources_problems(
        value={"limits": {"memory": "lots", "cpu": "500m"}, "requests": {"Bad Name": "1"}, "extra": {}}
    )
    paths = {p.path for p in problems}
    assert paths == {
        "default_resources.limits.memory",
        "default_resources.requests.Bad Name",
        "default_resources.extra",
    }
    assert "'lots' is not a quantity" in next(str(p) for p in problems if p.path.endswith("memory"))
    assert resources_problems(value={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1}}) == []
    assert [p.path for p in resources_problems(value=["cpu"])] == ["default_resources"]


def test_timeout_node_selector_and_tolerations_checks() -> None:
    assert timeout_problems(value=None) == [] and timeout_problems(value=60) == []
    assert [p.path for p in timeout_problems(value=0)] == ["default_timeout"]
    assert [p.path for p in timeout_problems(value="60")] == ["default_timeout"]
    assert node_selector_problems(value={"k8x.io/pool": "batch"}) == []
    assert [p.path for p in node_selector_problems(value={"bad key!": "x", "ok": "not ok!"})] == [
        "node_selector.bad key!",
        "node_selector.ok",
    ]
    assert tolerations_problems(value=[TAINT, {"operator": "Exists"}]) == []
    bad = tolerations_problems(
        value=[
            {"key": "a", "operator": "Maybe"},
            {"key": "b", "operator": "Exists", "value": "x"},
            {"key": "c", "x": 1},
        ]
    )
    assert {p.path for p in bad} == {"tolerations[0].operator", "tolerations[1].value", "tolerations[2].x"}


def test_allowed_tolerations_setting_is_checked_at_start(settings: Any) -> None:
    settings.K8X_ALLOWED_TOLERATIONS = [{"key": "gpu", "operator": "Exists"}]
    assert "k8x.E009" not in {m.id for m in check_settings()}
    settings.K8X_ALLOWED_TOLERATIONS = [{"key": "gpu", "operator": "Sometimes"}]
    messages = [m for m in check_settings() if m.id == "k8x.E009"]
    assert messages and "K8X_ALLOWED_TOLERATIONS[0].operator" in messages[0].msg
    settings.K8X_ALLOWED_TOLERATIONS = {"key": "gpu"}
    assert "k8x.E009" in {m.id for m in check_settings()}


# --- applying them --------------------------------------------------------------------------


def test_defaults_fill_only_what_the_service_leaves_unset() -> None:
    defaults = RunDefaults(
        resources={"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
        timeout=300,
        node_selector={"pool": "batch"},
        tolerations=[TAINT],
        pull_secret=PULL_SECRET_NAME,
    )
    own = {"limits": {"memory": "1Gi"}}
    job = _job(
        {
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x", "resources": own}],
            "initContainers": [{"name": "i", "image": "x", "resources": {}}],
            "nodeSelector": {"zone": "a"},
            "tolerations": [dict(TAINT)],
        }
    )
    job_defaults_apply(job=job, defaults=defaults)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == defaults.resources
    assert pod["containers"][1]["resources"] == own
    assert pod["initContainers"][0]["resources"] == defaults.resources
    assert job["spec"]["activeDeadlineSeconds"] == 300
    assert pod["nodeSelector"] == {"zone": "a", "pool": "batch"}
    assert pod["tolerations"] == [TAINT]  # not added twice
    assert pod["imagePullSecrets"] == [{"name": PULL_SECRET_NAME}]
    # The defaults are copied, never shared with the Job.
    pod["containers"][0]["resources"]["limits"]["memory"] = "2Gi"
    assert defaults.resources["limits"]["memory"] == "64Mi"


def test_the_service_timeout_wins_and_no_defaults_change_nothing() -> None:
    job = _job(activeDeadlineSeconds=30)
    job_defaults_apply(job=job, defaults=RunDefaults(timeout=300))
    assert job["spec"]["activeDeadlineSeconds"] == 30
    plain = _job()
    job_defaults_apply(job=plain, defaults=RunDefaults())
    assert plain == _job()


def test_job_build_applies_the_project_defaults() -> None:
    project = _project(
        default_resources={"limits": {"memory": "96Mi"}},
        default_timeout=120,
        node_selector={"pool": "batch"},
        tolerations=[TAINT],
    )
    service = Service(name="svc", image="busybox", project=project, project_id=project.id)
    run = Run(id=uuid.uuid4(), trigger_kind=TriggerKind.MANUAL, params={})

    def build(service: Service, logins: bool) -> dict[str, Any]:
        return jobspec.job_build(
            run=run,
            service=service,
            project_slug="shop",
            namespace="k8x-shop",
            event=None,
            configs={},
            secret_keys=[],
            events_url="http://x",
            run_token="t",
            ttl_seconds_after_finished=None,
            defaults=project_run_defaults(project=project, pull_secret=logins),
        ).job

    job = build(service, logins=True)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == 120
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "96Mi"}}
    assert pod["nodeSelector"] == {"pool": "batch"} and pod["tolerations"] == [TAINT]
    assert pod["imagePullSecrets"] == [{"name": PULL_SECRET_NAME}]
    assert "imagePullSecrets" not in build(service, logins=False)["spec"]["template"]["spec"]

    own = Service(
        name="own",
        image="busybox",
        project=project,
        project_id=project.id,
        timeout_seconds=9,
        resources={"requests": {"cpu": "10m"}},
    )
    job = build(own, logins=False)
    assert job["spec"]["activeDeadlineSeconds"] == 9
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "10m"}}


# --- the validator --------------------------------------------------------------------------


def _check(pod_spec: dict[str, Any], project: Project | None = None) -> list[validation.Problem]:
    _, problems = validation.template_check(
        text=_template(pod_spec),
        service_name="svc",
        level="restricted",
        placement=project_placement(project=project or _project(node_selector={"pool": "batch"}, tolerations=[TAINT])),
    )
    return problems


def test_templates_may_narrow_the_placement_but_never_leave_it() -> None:
    assert _check({"nodeSelector": {"pool": "batch", "zone": "a"}, "tolerations": [TAINT]}) == []
    assert _rules(_check({"nodeSelector": {"pool": "gpu"}})) == {(f"{POD}.nodeSelector.pool", "placement")}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]},
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch", "gpu"]}]},
                    {"matchExpressions": [{"key": "pool", "operator": "DoesNotExist"}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                ]
            }
        }
    }
    terms = f"{POD}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
    assert _rules(_check({"affinity": affinity})) == {
        (f"{terms}[0].matchExpressions[0]", "placement"),
        (f"{terms}[2].matchExpressions[0]", "placement"),
    }
    # A project without node labels leaves the template's selector alone.
    assert _check({"nodeSelector": {"pool": "gpu"}}, _project()) == []


def test_tolerations_scheduler_and_pull_secrets(settings: Any) -> None:
    other = {"key": "gpu", "operator": "Exists"}
    assert _rules(_check({"tolerations": [TAINT, other]})) == {(f"{POD}.tolerations[1]", "toleration")}
    settings.K8X_ALLOWED_TOLERATIONS = [other]
    assert _check({"tolerations": [TAINT, other]}) == []
    assert _rules(_check({"schedulerName": "my-scheduler"})) == {(f"{POD}.schedulerName", "scheduler-name")}
    assert _check({"schedulerName": "default-scheduler"}) == []
    assert _rules(_check({"imagePullSecrets": [{"name": "theirs"}, {"name": PULL_SECRET_NAME}]})) == {
        (f"{POD}.imagePullSecrets[0]", "pull-secret")
    }


def test_dockerconfigjson_holds_one_entry_per_server() -> None:
    text = dockerconfigjson(
        logins=[RegistryLogin("localhost:5001", "k8x", "pw"), RegistryLogin("registry.example.com", "me", "x:y")]
    )
    auths = json.loads(text)["auths"]
    assert auths["localhost:5001"] == {"username": "k8x", "password": "pw", "auth": "azh4OnB3"}
    assert set(auths) == {"localhost:5001", "registry.example.com"}
    assert "pw" not in repr(RegistryLogin("localhost:5001", "k8x", "pw"))
