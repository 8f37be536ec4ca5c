"""The Job a run becomes: pure-function tests (no cluster needed)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from k8x_core.models import Event, Run, Service, TriggerKind
from k8x_core.runs import jobspec


def _event(data: Any, **attrs: Any) -> Event:
    payload = {
        "specversion": "1.0",
        "id": "ev-1",
        "type": "com.acme.order.created",
        "source": "/shop",
        "subject": "order/7",
        "time": "2026-11-24T10:00:00Z",
        "datacontenttype": "application/json",
        "data": data,
        **attrs,
    }
    return Event(
        ce_id=payload["id"], type=payload["type"], source=payload["source"], subject=payload["subject"], payload=payload
    )


def _build(service: Service, event: Event | None, run: Run | None = None, **kw: Any) -> jobspec.JobBuild:
    run = run or Run(id=uuid.uuid4(), trigger_kind=TriggerKind.EVENT, correlation_id="corr-1")
    args: dict[str, Any] = {
        "run": run,
        "service": service,
        "project_slug": "shop",
        "namespace": "k8x-shop",
        "event": event,
        "configs": {"COLOR": "blue", "SHARED": "config"},
        "secret_keys": ["DB_PASSWORD", "SHARED"],
        "events_url": "http://10.244.0.1:8000/api/events",
        "run_token": "k8xrun.token-value",
        "ttl_seconds_after_finished": 600,
    }
    args.update(kw)
    return jobspec.job_build(**args)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_param_names_follow_the_contract() -> None:
    assert jobspec.param_env_name("amount") == "K8X_PARAM_AMOUNT"
    assert jobspec.param_env_name("order-id.v2") == "K8X_PARAM_ORDER_ID_V2"
    assert jobspec.param_env_name("ünï") == "K8X_PARAM__N_"
    assert jobspec.params_env({"a": 1, "b": True, "c": None, "d": "x", "e": {"n": 1}, "f": [1], "g": 1.5}) == [
        ("K8X_PARAM_A", "1"),
        ("K8X_PARAM_B", "true"),
        ("K8X_PARAM_C", "null"),
        ("K8X_PARAM_D", "x"),
        ("K8X_PARAM_G", "1.5"),
    ]
    assert jobspec.params_env(["not", "an", "object"]) == []


def test_simple_service_job_has_contract_env_labels_and_limits() -> None:
    service = Service(
        name="billing",
        image="localhost:5000/k8x/busybox:1",
        command=["sh", "-c"],
        args=["env"],
        resources={"limits": {"memory": "64Mi"}},
        timeout_seconds=30,
        retries=2,
    )
    run = Run(id=uuid.uuid4(), trigger_kind=TriggerKind.EVENT, correlation_id="corr-1")
    built = _build(service, _event({"amount": 120, "order-id": "A7", "items": [1, 2]}), run=run)
    job = built.job
    assert job["metadata"]["name"] == f"k8x-run-{run.id.hex}"
    assert job["metadata"]["namespace"] == "k8x-shop"
    labels = job["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/managed-by": "k8x",
        "k8x.io/project": "shop",
        "k8x.io/service": "billing",
        "k8x.io/run-id": str(run.id),
    }
    assert job["metadata"]["annotations"] == {"k8x.io/event-id": "ev-1", "k8x.io/correlation-id": "corr-1"}
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 30
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "localhost:5000/k8x/busybox:1"
    assert container["command"] == ["sh", "-c"]
    assert container["args"] == ["env"]
    assert container["resources"] == {"limits": {"memory": "64Mi"}}
    env = _env(container)
    assert env["K8X_RUN_ID"] == str(run.id)
    assert env["K8X_SERVICE"] == "billing"
    assert env["K8X_PROJECT"] == "shop"
    assert env["K8X_TRIGGER"] == "event"
    assert env["K8X_CORRELATION_ID"] == "corr-1"
    assert env["K8X_EVENT_ID"] == "ev-1"
    assert env["K8X_EVENT_TYPE"] == "com.acme.order.created"
    assert env["K8X_EVENT_SOURCE"] == "/shop"
    assert env["K8X_EVENT_SUBJECT"] == "order/7"
    assert env["K8X_EVENT_TIME"] == "2026-11-24T10:00:00Z"
    assert json.loads(env["K8X_EVENT"])["data"]["amount"] == 120
    assert "K8X_EVENT_FILE" not in env
    assert json.loads(env["K8X_PARAMS"]) == {"amount": 120, "order-id": "A7", "items": [1, 2]}
    assert env["K8X_PARAM_AMOUNT"] == "120"
    assert env["K8X_PARAM_ORDER_ID"] == "A7"
    assert "K8X_PARAM_ITEMS" not in env
    assert env["COLOR"] == "blue"
    # Secrets are references only; a secret shadows a config of the same name.
    assert env["DB_PASSWORD"] == {"secretKeyRef": {"name": "k8x-svc-billing", "key": "DB_PASSWORD"}}
    assert env["SHARED"] == {"secretKeyRef": {"name": "k8x-svc-billing", "key": "SHARED"}}
    assert env["K8X_EVENTS_URL"] == "http://10.244.0.1:8000/api/events"
    assert env["K8X_RUN_TOKEN"] == {"secretKeyRef": {"name": f"k8x-run-{run.id.hex}", "key": "K8X_RUN_TOKEN"}}
    assert "k8xrun.token-value" not in json.dumps(job)
    assert built.run_secret_data == {"K8X_RUN_TOKEN": "k8xrun.token-value"}
    assert not built.event_in_file


def test_template_env_is_merged_into_every_container_and_contract_wins() -> None:
    template = """
apiVersion: batch/v1
kind: Job
metadata:
  name: ignored
  labels: {team: a, k8x.io/run-id: forged}
spec:
  backoffLimit: 9
  template:
    metadata:
      labels: {tier: batch}
    spec:
      restartPolicy: OnFailure
      initContainers:
        - name: init
          image: localhost:5000/k8x/busybox:1
      containers:
        - name: a
          image: localhost:5000/k8x/busybox:1
          args: ["echo $(K8X_PARAM_AMOUNT)"]
          env:
            - {name: OWN, value: "$(K8X_RUN_ID)"}
            - {name: K8X_SERVICE, value: forged}
        - name: b
          image: localhost:5000/k8x/python:3
"""
    service = Service(name="multi", job_template=template, retries=0)
    built = _build(service, _event({"amount": 5}))
    job = built.job
    assert job["metadata"]["name"].startswith("k8x-run-")
    assert job["metadata"]["labels"]["team"] == "a"
    assert job["metadata"]["labels"]["k8x.io/run-id"] != "forged"
    assert job["spec"]["backoffLimit"] == 0
    assert "activeDeadlineSeconds" not in job["spec"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["template"]["metadata"]["labels"]["tier"] == "batch"
    for container in pod["initContainers"] + pod["containers"]:
        env = _env(container)
        assert env["K8X_SERVICE"] == "multi"
        assert env["K8X_PARAM_AMOUNT"] == "5"
    a_env = pod["containers"][0]["env"]
    names = [e["name"] for e in a_env]
    # Contract variables come first, so $(K8X_...) references resolve.
    assert names.index("OWN") > names.index("K8X_RUN_ID")
    assert names.count("K8X_SERVICE") == 1


@pytest.mark.parametrize(
    "text",
    [
        "kind: Pod\nspec:\n  containers:\n  - {name: x, image: i}\n",
        "spec:\n  containers:\n  - {name: x, image: i}\n",
        "template:\n  spec:\n    containers:\n    - {name: x, image: i}\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - {name: x, image: i}\n",
    ],
)
def test_pod_and_pod_template_become_a_job(text: str) -> None:
    job = jobspec.template_parse(text)
    assert job["spec"]["template"]["spec"]["containers"][0]["name"] == "x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "not valid YAML"),
        ("- 1\n", "YAML mapping"),
        ("kind: Deployment\n", "kind: must be Job or Pod"),
        ("apiVersion: batch/v2\nkind: Job\nspec: {}\n", "apiVersion: must be batch/v1"),
        ("apiVersion: batch/v1\nkind: Job\nspec: {template: {spec: {containers: []}}}\n", "non-empty list"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(jobspec.JobSpecInvalid, match=message):
        jobspec.template_parse(text)


def test_event_over_64_kib_goes_to_a_mounted_file() -> None:
    service = Service(name="big", image="localhost:5000/k8x/busybox:1")
    event = _event({"blob": "x" * (70 * 1024), "n": 1})
    built = _build(service, event)
    pod = built.job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = _env(container)
    assert built.event_in_file
    assert "K8X_EVENT" not in env
    assert env["K8X_EVENT_FILE"] == "/var/run/k8x/event.json"
    assert env["K8X_PARAM_N"] == "1"
    assert "K8X_PARAM_BLOB" not in env  # too large for one environment variable
    assert {"name": "k8x-event", "mountPath": "/var/run/k8x", "readOnly": True} in container["volumeMounts"]
    (volume,) = pod["volumes"]
    assert volume["secret"]["secretName"] == built.job["metadata"]["name"]
    assert json.loads(built.run_secret_data["event.json"])["data"]["n"] == 1
    assert len(json.dumps(built.job)) < 64 * 1024


def test_manual_run_without_event_uses_form_values() -> None:
    service = Service(name="manual", image="localhost:5000/k8x/busybox:1")
    run = Run(id=uuid.uuid4(), trigger_kind=TriggerKind.MANUAL, correlation_id="c", params={"Target Env": "prod"})
    env = _env(_build(service, None, run=run).job["spec"]["template"]["spec"]["containers"][0])
    assert env["K8X_TRIGGER"] == "manual"
    assert env["K8X_EVENT_ID"] == ""
    assert env["K8X_EVENT"] == "null"
    assert json.loads(env["K8X_PARAMS"]) == {"Target Env": "prod"}
    assert env["K8X_PARAM_TARGET_ENV"] == "prod"


def test_service_without_image_or_template_is_refused() -> None:
    with pytest.raises(jobspec.JobSpecInvalid, match="neither an image nor a job template"):
        _build(Service(name="empty"), None)


def test_template_parse_gives_each_caller_its_own_copy() -> None:
    # The YAML is parsed once per text (an LRU): a launch that changes its Job
    # (env, labels) must not change the next launch's.
    text = "spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: x\n"
    first = jobspec.template_parse(text)
    first["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    second = jobspec.template_parse(text)
    assert "env" not in second["spec"]["template"]["spec"]["containers"][0]
    assert second == jobspec.template_parse(text) and second is not jobspec.template_parse(text)
    with pytest.raises(jobspec.JobSpecInvalid):
        jobspec.template_parse("kind: Deployment\n")
    with pytest.raises(jobspec.JobSpecInvalid):
        jobspec.template_parse("kind: Deployment\n")  # a refusal is remembered as a refusal
