"""sdk/shell/k8x.sh, sourced by bash and by busybox sh (the shell example's image)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.sdk.conftest import SDK, Sink

SHELLS = ["bash", "busybox sh"]


def sh(shell: str, script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert shutil.which(shell.split()[0]), f"{shell} is needed (busybox-static comes with the local cluster)"
    return subprocess.run(
        [*shell.split(), "-c", f". {SDK / 'shell' / 'k8x.sh'}\n{script}"],
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_params_configs_and_secret_presence(shell: str) -> None:
    env = {"K8X_PARAM_ORDER_ID": "7", "GREETING": "hi", "API_TOKEN": "s3cret"}
    out = sh(
        shell,
        "k8x_param order-id; k8x_param missing dflt; k8x_config GREETING x; k8x_config NOPE fb;"
        "k8x_secret_set API_TOKEN && echo set; k8x_secret_set NOPE || echo unset",
        env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n") == ["7", "dflt", "hi", "fb", "set", "unset", ""]
    refused = sh(shell, "k8x_config K8X_RUN_ID", env)
    assert refused.returncode == 2 and "contract variable" in refused.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_log_writes_valid_json_for_awkward_text(shell: str) -> None:
    out = sh(shell, 'k8x_log warn "$MSG" \'"n":1\'', {"MSG": 'a "q" \\ b\nc\td', "K8X_RUN_ID": "r1"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"level": "warn", "msg": 'a "q" \\ b\nc\td', "run_id": "r1", "n": 1}


@pytest.mark.parametrize("shell", SHELLS)
def test_send_posts_a_cloudevent(shell: str, event_sink: Sink) -> None:
    env = {
        "K8X_EVENTS_URL": event_sink.url,
        "K8X_RUN_TOKEN": "tok",
        "K8X_CORRELATION_ID": "cid-1",
        "K8X_PROJECT": "demo",
        "K8X_SERVICE": "shell-hello",
    }
    out = sh(shell, "k8x_send com.acme.next '{\"n\":2}'", env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"id": "new-id", "correlation_id": "cid-1"}
    (request,) = event_sink.requests
    assert request["headers"]["Authorization"] == "Bearer tok"
    body = request["body"]
    assert (body["type"], body["source"], body["correlationid"], body["data"]) == (
        "com.acme.next",
        "k8x://demo/shell-hello",
        "cid-1",
        {"n": 2},
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_send_fails_clearly(shell: str, event_sink: Sink) -> None:
    missing = sh(shell, "k8x_send x")
    assert missing.returncode == 2 and "K8X_EVENTS_URL and K8X_RUN_TOKEN must be set" in missing.stderr
    event_sink.status = 400
    refused = sh(shell, "k8x_send x", {"K8X_EVENTS_URL": event_sink.url, "K8X_RUN_TOKEN": "t"})
    assert refused.returncode != 0 and "refused" in refused.stderr
