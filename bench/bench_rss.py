"""Set-up RSS of every process of deploy/Procfile, with and without the web
apps (``K8X_WEB_APPS``; ``manage.py`` turns them off for the background
commands).

Each row is a fresh interpreter doing what ``manage.py <command>`` does before
its loop starts: Django's set-up and the import of the command's module; the
``web`` row imports the ASGI application. Its VmRSS is read from
``/proc/<pid>/status`` once it has set up. No services are needed.

    python bench/bench_rss.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from _common import REPO, proc_status_mb

_PROBE = """
import sys
import manage
manage.command_env_set(["manage.py", sys.argv[1]])
import django
django.setup()
if sys.argv[1] == "web":
    import k8x.asgi
else:
    from django.core.management import get_commands, load_command_class
    load_command_class(get_commands()[sys.argv[1]], sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


def setup_rss_mb(command: str, *, web_apps: bool | None) -> float:
    """VmRSS of a fresh process set up for ``command`` (``web_apps`` None: as manage.py chooses)."""
    env = {k: v for k, v in os.environ.items() if k != "K8X_WEB_APPS"}
    if web_apps is not None:
        env["K8X_WEB_APPS"] = "true" if web_apps else "false"
    proc = subprocess.Popen(
        [sys.executable, "-c", _PROBE, command],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"{command}: set-up failed"
        time.sleep(0.2)
        return proc_status_mb(proc.pid, "VmRSS")
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    procfile = (REPO / "deploy" / "Procfile").read_text()
    rows: list[tuple[str, str]] = [("web", "web")]
    for name, command in re.findall(r"^(\w+): .*?manage\.py (\w+)", procfile, flags=re.M):
        rows.append((name, command))
    load = os.getloadavg()[:2]
    print(f"\nset-up RSS per process (MB), load {load[0]:.1f}/{load[1]:.1f}, {os.cpu_count()} CPUs")
    print(f"{'process':<12}{'command':<16}{'as run':>8}{'with web apps':>15}{'saved':>8}")
    for name, command in rows:
        as_run = setup_rss_mb(command, web_apps=None)
        with_web = setup_rss_mb(command, web_apps=True)
        print(f"{name:<12}{command:<16}{as_run:>8.0f}{with_web:>15.0f}{with_web - as_run:>8.0f}")
    print("as run: K8X_WEB_APPS as manage.py sets it (false for the background commands); set-up only, no load.")


if __name__ == "__main__":
    main()
