"""sdk/shell/k8x.sh, sourced by bash and by busybox sh (the shell example's image)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.sdk.conftest import SDK, Sink

SHELLS = ["bash", "busybox sh"]


@pytest.fixture(scope="module")
def busybox_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH of busybox applets only, as in the shell example's image (wget, no curl)."""
    busybox = shutil.which("busybox")
    assert busybox, "busybox is needed (busybox-static comes with the local cluster)"
    bin_dir = tmp_path_factory.mktemp("busybox-bin")
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split():
        (bin_dir / applet).symlink_to(busybox)
    return str(bin_dir)


def sh(shell: str, script: str, env: dict[str, str] | None = None, path: str = "") -> subprocess.CompletedProcess[str]:
    program, *args = shell.split()
    found = shutil.which(program)
    assert found, f"{program} is needed (busybox-static comes with the local cluster)"
    return subprocess.run(
        [found, *args, "-c", f". {SDK / 'shell' / 'k8x.sh'}\n{script}"],
        env={"PATH": path or "/usr/bin:/bin", **(env or {})},
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
@pytest.mark.parametrize("client", ["curl", "busybox wget"])
def test_send_posts_a_cloudevent(shell: str, client: str, event_sink: Sink, busybox_path: str) -> None:
    env = {
        "K8X_EVENTS_URL": event_sink.url,
        "K8X_RUN_TOKEN": "tok",
        "K8X_CORRELATION_ID": "cid-1",
        "K8X_PROJECT": "demo",
        "K8X_SERVICE": "shell-hello",
    }
    out = sh(shell, "k8x_send com.acme.next '{\"n\":2}'", env, path=busybox_path if client == "busybox wget" else "")
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
@pytest.mark.parametrize("client", ["curl", "busybox wget"])
def test_send_fails_clearly(shell: str, client: str, event_sink: Sink, busybox_path: str) -> None:
    path = busybox_path if client == "busybox wget" else ""
    missing = sh(shell, "k8x_send x", path=path)
    assert missing.returncode == 2 and "K8X_EVENTS_URL and K8X_RUN_TOKEN must be set" in missing.stderr
    event_sink.status = 400
    refused = sh(shell, "k8x_send x", {"K8X_EVENTS_URL": event_sink.url, "K8X_RUN_TOKEN": "t"}, path=path)
    assert refused.returncode != 0 and "refused" in refused.stderr
