"""Every example service, applied with `manage.py k8x_apply examples/<dir>` to a real
K8X on the local cluster: an event through the HTTP bridge and Kafka starts it; its
stored log has the JSON lines, it emits its follow-up event, and bad input fails the
run with the exit code; the order flow ends with both runs succeeded in one correlation."""

from __future__ import annotations

import pytest

from k8x_core.models import Event, RunStatus
from k8x_core.runs.logs import run_log_text
from tests.examples.conftest import K8x, log_json

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]

LANGUAGES = ["shell", "python", "node", "go"]


def test_make_examples_lists_every_image(example_images: str) -> None:
    for name in [f"{lang}-hello" for lang in LANGUAGES] + ["take-order", "ship-order"]:
        assert f"localhost:5000/k8x/examples/{name}:1" in example_images


@pytest.mark.parametrize("lang", LANGUAGES)
def test_hello_example(k8x: K8x, lang: str) -> None:
    name = f"{lang}-hello"
    applied = k8x.manage("k8x_apply", f"examples/{name}", "--project", k8x.project.slug)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"+ create {name}" in applied.stdout
    with_secret = lang in ("python", "go")  # the others show the secret missing
    if with_secret:
        stored = k8x.manage(
            "k8x_secret", "set", "--project", k8x.project.slug, "--service", name, "HELLO_API_TOKEN", stdin="tok-123\n"
        )
        assert stored.returncode == 0, stored.stderr

    k8x.wait_trigger(f"com.example.hello.{lang}")
    cid = k8x.send(f"com.example.hello.{lang}", {"name": "Ada"})
    (run,) = k8x.wait_runs(cid, 1)
    assert (run.service.name, run.status, run.exit_code) == (name, RunStatus.SUCCEEDED, 0), (
        run.reason,
        run_log_text(run.pk),
    )
    lines = log_json(run_log_text(run.pk))
    greeting = next(line for line in lines if line["msg"] == "greeting")
    assert greeting["greeting"] == "Hello, Ada!"  # GREETING and PUNCTUATION from configs.json
    assert greeting["secret_set"] is with_secret
    assert greeting["run_id"] == str(run.pk) and greeting["correlation_id"] == cid
    assert "tok-123" not in run_log_text(run.pk)
    assert any(line["msg"] == "follow-up event sent" for line in lines), run_log_text(run.pk)
    follow_up = Event.objects.get(type="com.example.hello.greeted", correlation_id=cid)
    assert follow_up.project_id == k8x.project.pk

    status, run_json = k8x.request("GET", f"/api/runs/{run.pk}")
    assert status == 200 and run_json["status"] == "succeeded" and run_json["exit_code"] == 0

    bad = k8x.send(f"com.example.hello.{lang}", {"nam": 1})
    (failed,) = k8x.wait_runs(bad, 1)
    assert (failed.status, failed.exit_code) == (RunStatus.FAILED, 2), (failed.reason, run_log_text(failed.pk))
    assert any(line["msg"] == "bad input" and line["level"] == "error" for line in log_json(run_log_text(failed.pk))), (
        run_log_text(failed.pk)
    )


def test_order_flow_runs_both_steps_in_one_correlation(k8x: K8x) -> None:
    applied = k8x.manage("k8x_apply", "examples/order-flow", "--project", k8x.project.slug)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "2 to create" in applied.stdout

    order = {
        "order_id": "A-1001",
        "items": [{"sku": "BOOK-1", "qty": 2, "price": 12.5}, {"sku": "PEN", "qty": 1, "price": 3}],
    }
    k8x.wait_trigger("com.example.order.created")
    k8x.wait_trigger("com.example.order.accepted")
    cid = k8x.send("com.example.order.created", order)
    take, ship = k8x.wait_runs(cid, 2)
    assert [(r.service.name, r.status, r.exit_code) for r in (take, ship)] == [
        ("take-order", RunStatus.SUCCEEDED, 0),
        ("ship-order", RunStatus.SUCCEEDED, 0),
    ], (run_log_text(take.pk), run_log_text(ship.pk))
    shipped = next(line for line in log_json(run_log_text(ship.pk)) if line["msg"] == "order shipped")
    assert (shipped["order_id"], shipped["total"], shipped["warehouse"]) == ("A-1001", 28.0, "berlin-1")

    status, flow = k8x.request("GET", f"/api/correlations/{cid}")
    assert status == 200, flow
    assert flow["status"] == "succeeded"
    assert [(r["service"], r["status"]) for r in flow["runs"]] == [
        ("take-order", "succeeded"),
        ("ship-order", "succeeded"),
    ]
    assert [e["type"] for e in flow["events"]] == ["com.example.order.created", "com.example.order.accepted"]

    bad = k8x.send("com.example.order.created", {"order_id": "A-1002", "items": []})
    (refused,) = k8x.wait_runs(bad, 1)
    assert (refused.service.name, refused.status, refused.exit_code) == ("take-order", RunStatus.FAILED, 2)
