"""deploy/supervisor_conf.py: the supervisord configuration generated from
deploy/Procfile, read back with supervisord's own parser."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.events import getEventNameByType
from supervisor.options import ServerOptions

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "deploy" / "supervisor_conf.py"


def generate(procfile: Path, state_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["--procfile", str(procfile), "--repo", str(REPO), "--state-dir", str(state_dir), *extra]
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def supervisord_reads(conf: Path) -> ServerOptions:
    options = ServerOptions()
    options.realize(args=["-c", str(conf)])
    return options


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    for sub in ("logs", "run"):
        (tmp_path / "state" / sub).mkdir(parents=True)
    return tmp_path / "state"


def test_every_procfile_entry_is_a_supervised_program(tmp_path: Path, state_dir: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        (REPO / "deploy" / "Procfile").read_text()
        + "# a comment\n\nodd_one-2: printf '%s \"quoted\"\\n' 100% $K8X_WEB_BIND\n"
    )
    web_bind = "-e tcp:port=8000:interface=127.0.0.1 -e x,y=50%(z)s"
    conf = state_dir / "supervisord.conf"
    result = generate(procfile, state_dir, "--web-bind", web_bind, "--output", str(conf))
    assert result.returncode == 0, result.stderr

    options = supervisord_reads(conf)
    assert options.serverurl == f"unix://{state_dir}/run/supervisor.sock"
    assert options.pidfile == f"{state_dir}/run/supervisord.pid"
    assert options.logfile == f"{state_dir}/logs/supervisord.log"
    programs = {g.name: g.process_configs[0] for g in options.process_group_configs}
    entries = {}
    for line in procfile.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name] = command.strip()
    assert set(programs) == {*entries, "supervisor-reaper"}
    for name, command in entries.items():
        program = programs[name]
        # bash expands $K8X_WEB_BIND, exec leaves the process itself with the pid.
        assert shlex.split(program.command) == ["/bin/bash", "-c", f"exec {command}"]
        assert program.directory == str(REPO)
        assert program.environment == {"K8X_WEB_BIND": web_bind, "K8X_SUPERVISED": str(state_dir)}
        assert program.autostart and program.autorestart is RestartUnconditionally
        assert program.startsecs <= 5 and program.startretries >= 10
        assert program.stopasgroup and program.killasgroup
        assert program.redirect_stderr
        assert program.stdout_logfile == f"{state_dir}/logs/k8x-{name}.log"
        assert program.stdout_logfile_maxbytes > 0 and program.stdout_logfile_backups > 0

    # The listener that stops what a dead program left behind hears every exit.
    (reaper_pool,) = [g for g in options.process_group_configs if g.name == "supervisor-reaper"]
    assert "supervisor_reaper.py" in reaper_pool.process_configs[0].command
    heard = {getEventNameByType(event) for event in reaper_pool.pool_events}
    assert {"PROCESS_STATE_EXITED", "PROCESS_STATE_BACKOFF"} <= heard


def test_same_input_same_output(state_dir: Path) -> None:
    """`make up` twice must not make `supervisorctl update` restart anything."""
    procfile = REPO / "deploy" / "Procfile"
    first = generate(procfile, state_dir, "--web-bind", "-e tcp:port=1")
    second = generate(procfile, state_dir, "--web-bind", "-e tcp:port=1")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


def test_names_in_procfile_order(state_dir: Path) -> None:
    result = generate(REPO / "deploy" / "Procfile", state_dir, "--names")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["web", "hub", "worker"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web: daphne x\nno colon here\n", "line 2: expected 'name: command'"),
        ("web:\n", "line 1: expected 'name: command'"),
        ("Web: daphne x\n", "line 1: process name 'Web'"),
        ("web: a\nweb: b\n", "line 2: process name 'web' appears twice"),
        ("supervisor-reaper: x\n", "line 1: process name 'supervisor-reaper' is reserved"),
        ("# only a comment\n", "no 'name: command' line"),
    ],
)
def test_procfile_errors_name_the_line(tmp_path: Path, state_dir: Path, text: str, message: str) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(text)
    result = generate(procfile, state_dir)
    assert result.returncode == 1
    assert message in result.stderr
    assert str(procfile) in result.stderr


def test_quote_in_environment_refused(state_dir: Path) -> None:
    result = generate(REPO / "deploy" / "Procfile", state_dir, "--web-bind", '-e "x"')
    assert result.returncode == 1
    assert "K8X_WEB_BIND" in result.stderr and "quote" in result.stderr


def test_state_dir_too_long_for_the_socket(tmp_path: Path) -> None:
    long_dir = tmp_path / ("s" * 120)
    result = generate(REPO / "deploy" / "Procfile", long_dir)
    assert result.returncode == 1
    assert "longer than 107 bytes" in result.stderr and "K8X_STATE_DIR" in result.stderr
