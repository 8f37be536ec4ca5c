"""Writes the supervisord configuration of the embedded mode from deploy/Procfile.

`deploy/k8x.sh up` runs it at every start, so deploy/Procfile stays the one list
of processes; the result goes to $K8X_STATE_DIR/supervisord.conf. Standard
library only: it runs before Django (and must not need settings).

    python deploy/supervisor_conf.py --procfile deploy/Procfile --repo . \
        --state-dir .state --web-bind "$K8X_WEB_BIND" --output .state/supervisord.conf

The output is the same for the same input (no time stamps), so running
`supervisorctl update` after a second `make up` restarts only the programs
whose command or environment changed.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

NAME_RE = re.compile(r"[a-z][a-z0-9_-]*")
# The kernel's limit on a unix socket path (sun_path) is 108 bytes with the NUL.
MAX_SOCKET_PATH = 107
# A program must stay up this long to count as started; one that exits sooner
# is retried after 1 s, 2 s, 3 s, ... and given up (FATAL) after START_RETRIES
# tries (about 7 minutes). A program that was running and dies is restarted at
# once, whatever its exit code.
START_SECONDS = 5
START_RETRIES = 30
# SIGTERM lets the hub finish its batch and a worker its job; SIGKILL after this.
STOP_WAIT_SECONDS = 15
LOG_MAX_BYTES = "10MB"
LOG_BACKUPS = 5
# Set in every supervised program: `k8x.sh` finds processes left over from a
# supervisor that died (kill -9) by it, children included.
MARKER_VARIABLE = "K8X_SUPERVISED"
# The event listener that stops what a dead program left (deploy/supervisor_reaper.py).
REAPER_NAME = "supervisor-reaper"


class ProcfileError(ValueError):
    """deploy/Procfile has a line that is not `name: command`."""


@dataclass(frozen=True)
class ProcfileEntry:
    name: str
    command: str


def procfile_parse(*, text: str, source: str = "deploy/Procfile") -> list[ProcfileEntry]:
    """The entries of a Procfile: `name: command` lines; blank lines and `#` comments are skipped."""
    entries: list[ProcfileEntry] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not command:
            raise ProcfileError(f"{source} line {number}: expected 'name: command', got {line!r}")
        if not NAME_RE.fullmatch(name):
            raise ProcfileError(
                f"{source} line {number}: process name {name!r} must be lower-case letters, digits, '_' or '-',"
                " starting with a letter"
            )
        if name == REAPER_NAME:
            raise ProcfileError(f"{source} line {number}: process name {name!r} is reserved for the supervisor")
        if name in seen:
            raise ProcfileError(f"{source} line {number}: process name {name!r} appears twice")
        seen.add(name)
        entries.append(ProcfileEntry(name=name, command=command))
    if not entries:
        raise ProcfileError(f"{source}: no 'name: command' line")
    return entries


def _escape(value: str) -> str:
    """supervisord expands %(name)s in its values: a literal % is written %%."""
    return value.replace("%", "%%")


def _env_value(name: str, value: str) -> str:
    """A value of supervisord's environment=: it keeps no quote or newline inside a quoted value."""
    if any(c in value for c in "\"'\n"):
        raise ValueError(f"{name} {value!r}: a quote or newline cannot be passed through supervisord's environment=")
    return f'"{value}"'


def supervisor_conf_render(
    *,
    entries: list[ProcfileEntry],
    repo: Path,
    state_dir: Path,
    web_bind: str,
    bash: str = "/bin/bash",
    python: str = sys.executable,
) -> str:
    """The supervisord.conf text: the daemon (socket and pid under run/, log under logs/) and one program per entry."""
    run_dir, log_dir = state_dir / "run", state_dir / "logs"
    socket = run_dir / "supervisor.sock"
    if len(os.fsencode(socket)) > MAX_SOCKET_PATH:
        raise ValueError(
            f"the supervisor socket path {socket} is longer than {MAX_SOCKET_PATH} bytes (a unix socket limit);"
            " set K8X_STATE_DIR to a shorter directory"
        )
    lines = [
        "; Written by deploy/k8x.sh from deploy/Procfile at every `make up`: edits here are overwritten.",
        "[unix_http_server]",
        f"file={_escape(str(socket))}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={_escape(str(log_dir / 'supervisord.log'))}",
        f"logfile_maxbytes={LOG_MAX_BYTES}",
        f"logfile_backups={LOG_BACKUPS}",
        f"pidfile={_escape(str(run_dir / 'supervisord.pid'))}",
        f"directory={_escape(str(repo))}",
        f"childlogdir={_escape(str(log_dir))}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_escape(str(socket))}",
    ]
    marker = f"{MARKER_VARIABLE}={_escape(_env_value('K8X_STATE_DIR', str(state_dir)))}"
    reaper = shlex.join([python, str(repo / "deploy" / "supervisor_reaper.py"), "--state-dir", str(state_dir)])
    lines += [
        "",
        f"[eventlistener:{REAPER_NAME}]",
        f"command={_escape(reaper)}",
        f"directory={_escape(str(repo))}",
        f"environment={marker}",
        "events=PROCESS_STATE_EXITED,PROCESS_STATE_BACKOFF,TICK_5",
        "autorestart=true",
        "startsecs=1",
        "stopasgroup=true",
        "killasgroup=true",
        # stdout is the listener protocol; what it reports goes to stderr.
        "stdout_logfile=NONE",
        f"stderr_logfile={_escape(str(log_dir / f'{REAPER_NAME}.log'))}",
        f"stderr_logfile_maxbytes={LOG_MAX_BYTES}",
        f"stderr_logfile_backups={LOG_BACKUPS}",
    ]
    environment = f"K8X_WEB_BIND={_escape(_env_value('K8X_WEB_BIND', web_bind))},{marker}"
    for entry in entries:
        # bash expands $K8X_WEB_BIND and friends as the Procfile promises, then
        # exec: the pid supervisord watches and signals is the process itself.
        command = shlex.join([bash, "-c", f"exec {entry.command}"])
        lines += [
            "",
            f"[program:{entry.name}]",
            f"command={_escape(command)}",
            f"directory={_escape(str(repo))}",
            f"environment={environment}",
            "autostart=true",
            "autorestart=true",
            f"startsecs={START_SECONDS}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            # The stop signal and the final SIGKILL go to the whole process
            # group: children (rqworker's scheduler, daphne's) go with it.
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_escape(str(log_dir / f'k8x-{entry.name}.log'))}",
            f"stdout_logfile_maxbytes={LOG_MAX_BYTES}",
            f"stdout_logfile_backups={LOG_BACKUPS}",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procfile", type=Path, required=True)
    parser.add_argument("--repo", type=Path, required=True, help="directory the programs run in")
    parser.add_argument("--state-dir", type=Path, required=True, help="K8X_STATE_DIR")
    parser.add_argument("--web-bind", default="", help="the value of $K8X_WEB_BIND for the programs")
    parser.add_argument("--output", type=Path, help="write here (atomically) instead of stdout")
    parser.add_argument("--names", action="store_true", help="print the process names, one a line, and exit")
    args = parser.parse_args(argv)
    try:
        entries = procfile_parse(text=args.procfile.read_text(), source=str(args.procfile))
        if args.names:
            sys.stdout.write("".join(f"{e.name}\n" for e in entries))
            return 0
        text = supervisor_conf_render(
            entries=entries, repo=args.repo.resolve(), state_dir=args.state_dir.resolve(), web_bind=args.web_bind
        )
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    if args.output is None:
        sys.stdout.write(text)
        return 0
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
