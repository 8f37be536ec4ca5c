"""Log line -> browser latency vs the Kubernetes API's own follow stream, on
this machine (real cluster, daphne, k8x_watch, Redis channel layer, Chromium).

A busybox run prints LINES lines, one every 20 ms. Each line carries the
container runtime's own timestamp (the moment the line left the container, as
``kubectl logs --timestamps`` shows it); both receivers compare it with the
time they got the line, on the same host clock:

- K8X: the run page in headless Chromium (Debian's ``chromium``, Playwright),
  logged in as a project member; the page's own WebSocket (``k8x_watch``
  follows the pod log -> channel layer -> daphne -> browser). The receive time
  is taken in the page, on each WebSocket message.
- direct: this process follows the same pod's log straight from the API
  (``follow=true&timestamps=true``): the floor for any log follower.

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench python bench/bench_live.py [LINES]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime

from _common import REPO, django_ready, pct

CHROMIUM = os.environ.get("K8X_CHROMIUM", "/usr/bin/chromium")
# Every message of every WebSocket the page opens, with the page's receive time (ms since the epoch).
RECORDER = """
(() => {
  const Native = window.WebSocket;
  window.__k8xFrames = [];
  class Recording extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => window.__k8xFrames.push([Date.now(), e.data]));
    }
  }
  window.WebSocket = Recording;
})();
"""


def line_time(line: str) -> float | None:
    """The runtime's RFC 3339 timestamp at the start of a log line, as epoch seconds."""
    stamp, _, _text = line.partition(" ")
    if not stamp.endswith("Z") or "T" not in stamp:
        return None
    head, _, frac = stamp[:-1].partition(".")
    try:
        when = datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
    except ValueError:
        return None
    return when.timestamp()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    django_ready()
    import json
    import urllib.request

    from django.conf import settings
    from django.contrib.auth.models import User
    from playwright.sync_api import sync_playwright

    from k8x_core import kube
    from k8x_core.catalog.services import run_manual_create
    from k8x_core.models import Membership, Project, Role, Run, Service
    from k8x_core.runs import jobspec

    tag = uuid.uuid4().hex[:8]
    namespace = f"k8x-bench-live-{tag}"
    password = uuid.uuid4().hex
    user = User.objects.create_user(f"bench-live-{tag}", password=password)
    project = Project.objects.create(slug=f"bench-live-{tag}", namespace=namespace)
    Membership.objects.create(project=project, user=user, role=Role.USER)
    script = f"sleep 4; i=0; while [ $i -lt {lines} ]; do echo line $i; i=$((i+1)); usleep 20000; done"
    service = Service.objects.create(
        project=project, name="chatty", image="localhost:5000/k8x/busybox:1", command=["sh", "-c", script]
    )
    kube.namespace_ensure(name=namespace)

    port = free_port()
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "K8X_QUEUE": settings.K8X_QUEUE,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    log = open(os.environ.get("BENCH_LIVE_LOG", os.devnull), "a")  # noqa: SIM115
    procs = [
        subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        for args in (
            ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "k8x.asgi:application"],
            ["manage.py", "rqworker", settings.K8X_QUEUE, "--worker-class", "rq.SimpleWorker"],
            ["manage.py", "k8x_watch", "--namespace", namespace],
        )
    ]
    base = f"http://127.0.0.1:{port}"
    direct: list[tuple[float, str]] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310 (loopback)
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("daphne did not answer /healthz within 60 s") from None
                time.sleep(0.3)
        # Playwright's sync API runs an event loop in this thread; the ORM calls
        # here are plain synchronous code all the same.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.add_init_script(RECORDER)
            page.goto(f"{base}/login/")
            page.get_by_label("Username").fill(user.username)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}/")

            run = run_manual_create(service=service, params={}, user=user)
            page.goto(f"{base}/runs/{run.pk}/")

            def follow_directly() -> None:
                selector = f"{jobspec.LABEL_RUN_ID}={run.pk}"
                end = time.monotonic() + 60
                while time.monotonic() < end:
                    pods, _rv = kube.pod_list(namespace=namespace, label_selector=selector)
                    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
                    if running:
                        name = running[0]["metadata"]["name"]
                        for line in kube.pod_log_stream(namespace=namespace, name=name):
                            direct.append((time.time(), line))
                        return
                    time.sleep(0.05)

            follower = threading.Thread(target=follow_directly, daemon=True)
            follower.start()
            end = time.monotonic() + 120
            received = 0
            while received < lines and time.monotonic() < end:
                page.wait_for_timeout(250)
                frames = page.evaluate("window.__k8xFrames")
                messages = [json.loads(data) for _t, data in frames]
                received = sum(len(m.get("lines", [])) for m in messages if m.get("type") == "log")
            frames = page.evaluate("window.__k8xFrames")
            browser.close()
            follower.join(timeout=30)

        k8x: list[float] = []
        for t_ms, data in frames:
            message = json.loads(data)
            if message.get("type") != "log":
                continue
            for line in message.get("lines", []):
                emitted = line_time(line)
                if emitted is not None and " line " in f" {line}":
                    k8x.append(t_ms / 1000 - emitted)
        floor = [t - e for t, line in direct if (e := line_time(line)) is not None]
        if not k8x or not floor:
            raise RuntimeError(f"no live lines measured (browser {len(k8x)}, direct {len(floor)})")
        ms = 1000.0
        print(f"\nlive log benchmark: {lines} lines, one every 20 ms, run {run.pk}")
        print(f"{'log line -> receiver':<26}{'K8X browser':>14}{'direct API':>14}{'ratio':>9}{'target':>10}")
        for name, q in (("p50 (ms)", 50), ("p99 (ms)", 99), ("max (ms)", 100)):
            ours, base_ms = pct(k8x, q) * ms, pct(floor, q) * ms
            target = "<= 1000" if q == 99 else ""
            print(f"{name:<26}{ours:>14.1f}{base_ms:>14.1f}{ours / max(base_ms, 0.001):>9.2f}{target:>10}")
        print(f"{'lines received':<26}{len(k8x):>14}{len(floor):>14}")
        verdict = "MET" if pct(k8x, 99) <= 1.0 and len(k8x) == lines else "NOT MET"
        print(f"target (p99 <= 1 s, every line live): {verdict}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        kube.namespace_delete(name=namespace)
        Run.objects.filter(service__project=project).delete()
        project.delete()
        user.delete()


if __name__ == "__main__":
    main()
