"""Fixtures for git deployment tests: service directories on disk, and a real
git server (``git daemon``) on loopback with bare repositories."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from tests.ports import free_port

JOB_YAML = """\
apiVersion: batch/v1
kind: Job
metadata:
  labels:
    team: demo
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: localhost:5000/k8x/busybox:1
          command: ["sh", "-c", "echo hello from {name}; env | grep ^K8X_EVENT_TYPE"]
"""


def service_write(
    root: Path,
    directory: str,
    *,
    manifest: dict[str, Any] | None = None,
    deployment: str | None = None,
    parameters: Any = None,
    configs: Any = None,
    raw_manifest: str | None = None,
) -> Path:
    """Write one service directory; ``manifest`` is merged over a valid default."""
    d = root / directory
    d.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {"name": directory, "type": "k8x_job", "description": f"the {directory} service"}
    base.update(manifest or {})
    (d / "manifest.json").write_text(raw_manifest if raw_manifest is not None else json.dumps(base, indent=2))
    (d / "deployment.yaml").write_text(deployment if deployment is not None else JOB_YAML.format(name=directory))
    if parameters is not None:
        (d / "parameters.json").write_text(parameters if isinstance(parameters, str) else json.dumps(parameters))
    if configs is not None:
        (d / "configs.json").write_text(configs if isinstance(configs, str) else json.dumps(configs))
    return d


def _git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@dataclass
class WorkRepo:
    """A working clone that pushes to a bare repository served by the fixture."""

    path: Path
    push_url: str

    def commit_push(self, message: str, *, branch: str = "main") -> str:
        _git("add", "-A", cwd=self.path)
        _git("commit", "-q", "--allow-empty", "-m", message, cwd=self.path)
        _git("push", "-q", self.push_url, f"HEAD:refs/heads/{branch}", cwd=self.path)
        return _git("rev-parse", "HEAD", cwd=self.path).strip()


@dataclass
class GitServer:
    base: Path
    port: int

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def create(self, name: str, workdir: Path) -> WorkRepo:
        bare = self.base / f"{name}.git"
        _git("init", "-q", "--bare", "-b", "main", str(bare), cwd=self.base)
        workdir.mkdir(parents=True, exist_ok=True)
        _git("init", "-q", "-b", "main", cwd=workdir)
        # Pushing to the bare repository directly keeps the test independent of receive-pack over git://.
        return WorkRepo(path=workdir, push_url=str(bare))


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    base = tmp_path / "served"
    base.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            f"--base-path={base}",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("git daemon did not start") from None
            time.sleep(0.05)
    yield GitServer(base=base, port=port)
    proc.terminate()
    proc.wait(timeout=10)


# --- HTTP(S) with a token: git http-backend behind a tiny WSGI server -------


@dataclass
class HttpGitServer:
    base: Path
    port: int
    token: str
    seen_auth: list[str]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def create(self, name: str, workdir: Path) -> WorkRepo:
        return GitServer(self.base, 0).create(name, workdir)


def _http_backend_app(base: Path, token: str, seen: list[str]) -> Any:
    expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        seen.append(auth)
        if auth != expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"unauthorized\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        cgi_env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(base),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "PATH_INFO": environ.get("PATH_INFO", ""),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_USER": "x-access-token",
        }
        cgi_env.update({k: v for k, v in environ.items() if k.startswith("HTTP_") and isinstance(v, str)})
        out = subprocess.run(["git", "http-backend"], input=body, env=cgi_env, capture_output=True, check=False).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = "200 OK"
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name.strip(), value.strip()))
        start_response(status, headers)
        return [payload]

    return app


@pytest.fixture
def http_git_server(tmp_path: Path) -> Iterator[HttpGitServer]:
    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    base = tmp_path / "http-served"
    base.mkdir()
    token = secrets.token_urlsafe(20)
    seen: list[str] = []
    server = make_server("127.0.0.1", 0, _http_backend_app(base, token, seen), handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HttpGitServer(base=base, port=server.server_port, token=token, seen_auth=seen)
    server.shutdown()
    server.server_close()


# --- SSH: a private sshd on loopback that only runs git for the deploy key ---


@dataclass
class SshGitServer:
    base: Path
    port: int
    authorized_keys: Path

    def url(self, name: str) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{self.base}/{name}.git"

    def scp_url(self, name: str) -> str:
        # scp-like addresses have no port; the tests use the ssh:// form.
        return f"root@127.0.0.1:{self.base}/{name}.git"

    def authorize(self, public_key: str) -> None:
        line = f'command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"",restrict {public_key}\n'
        with self.authorized_keys.open("a") as fh:
            fh.write(line)

    def create(self, name: str, workdir: Path) -> WorkRepo:
        return GitServer(self.base, 0).create(name, workdir)


SSHD = Path("/usr/sbin/sshd")


@pytest.fixture
def ssh_git_server(tmp_path: Path) -> Iterator[SshGitServer]:
    if not SSHD.exists():
        pytest.skip("no sshd on this machine (apt-get install -y openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("sshd needs root to switch to the git user")
    # sshd insists on its privilege-separation directory.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    conf_dir = tmp_path / "sshd"
    conf_dir.mkdir()
    base = tmp_path / "ssh-served"
    base.mkdir()
    host_key = conf_dir / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    authorized = conf_dir / "authorized_keys"
    authorized.write_text("")
    authorized.chmod(0o600)
    port = free_port()
    config = conf_dir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {conf_dir / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "AllowUsers root",
                "UsePAM no",
                "StrictModes no",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "PrintMotd no",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("sshd could not start here")
            time.sleep(0.05)
    yield SshGitServer(base=base, port=port, authorized_keys=authorized)
    proc.terminate()
    proc.wait(timeout=10)
