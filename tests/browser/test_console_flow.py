"""The console in headless Chromium against the whole live stack and the real cluster:
log in, create a service by the form (dry-run checked by the cluster), add a trigger,
send a test event, and watch the run page receive log lines over the websocket and turn
`succeeded` without a reload; a member of another project gets 404 on that run's page
and its websocket is refused. Screenshots: artifacts/screenshots/."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.contrib.auth.models import User

from k8x_core.models import Membership, Project, Role, Run, Service, Trigger
from k8x_core.runs.logs import run_log_text
from tests.browser.conftest import Stack, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.cluster, pytest.mark.kafka]

PASSWORD = "browser-test-pw-9"
LINES = 10
# Slow enough that the page is open while the pod still writes.
COMMAND = f"sh -c 'sleep 3; for i in $(seq 1 {LINES}); do echo \"console line $i\"; sleep 1; done'"


def login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/")
    assert "/login/" in page.url  # every page needs a login
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def trigger_loads(stack: Stack) -> list[int]:
    """The exact event types of each trigger index the hub loaded, in order (from its log)."""
    log = stack.log_tail("hub", lines=100_000)
    return [int(n) for n in re.findall(r"trigger index loaded: (\d+) exact types", log)]


def test_create_service_trigger_event_and_watch_run_live(stack: Stack, new_page: Any, kube_namespace: str) -> None:
    base = stack.base_url
    project = Project.objects.create(slug=f"web{int(time.time()) % 100000}", name="Web team", namespace=kube_namespace)
    other = Project.objects.create(slug=f"oth{int(time.time()) % 100000}", name="Other team")
    alice = User.objects.create_user("alice", password=PASSWORD)
    bob = User.objects.create_user("bob", password=PASSWORD)
    Membership.objects.create(project=project, user=alice, role=Role.OWNER)
    Membership.objects.create(project=other, user=bob, role=Role.OWNER)
    image = "localhost:5000/k8x/busybox:1"

    page = new_page()
    login(page, base, "alice")

    # Create a service by the form; the server dry-runs it against the cluster.
    page.goto(f"{base}/projects/{project.slug}/services/new/")
    page.get_by_label("Name").fill("hello")
    page.get_by_label("Description").fill("Says hello ten times")
    page.get_by_label("Image").fill(image)
    page.get_by_label("Command").fill(COMMAND)
    page.get_by_role("button", name="Create service").click()
    page.wait_for_url(f"{base}/projects/{project.slug}/services/hello/", timeout=30_000)
    service = Service.objects.get(project=project, name="hello")
    assert service.command[:2] == ["sh", "-c"]

    # Add a trigger on the service page.
    loads_before = len(trigger_loads(stack))
    page.get_by_label("Event type").fill("com.console.hello")
    page.get_by_role("button", name="Add trigger").click()
    page.wait_for_url(f"{base}/projects/{project.slug}/services/hello/")
    assert Trigger.objects.filter(service=service, event_type="com.console.hello").exists()
    assert page.get_by_text("Trigger on com.console.hello added.").is_visible()
    # The hub reloads its trigger index within about a second of a change; an event sent
    # before that is (rightly) unmatched. A user waits that long anyway; the test waits for it.
    deadline = time.monotonic() + 30
    while not any(n >= 1 for n in trigger_loads(stack)[loads_before:]):
        stack.check_alive()
        assert time.monotonic() < deadline, "the hub never loaded the trigger:\n" + stack.log_tail("hub")
        time.sleep(0.2)

    # Send a test event from the service page's link (project and type prefilled).
    page.get_by_role("link", name="Send a test event").click()
    assert page.get_by_label("Type").input_value() == "com.console.hello"
    page.get_by_label("Data (JSON)").fill('{"greeting": "hi"}')
    page.get_by_role("button", name="Send event").click()
    page.wait_for_url(re.compile(r".*/flows/[^/]+/$"), timeout=60_000)

    # The flow page lists the run once the hub recorded it.
    deadline = time.monotonic() + 60
    while not page.locator('main a.mono[href^="/runs/"]').count():
        stack.check_alive()
        assert time.monotonic() < deadline, "the hub recorded no run:\n" + stack.log_tail("hub")
        time.sleep(0.5)
        page.reload()
    page.locator('main a.mono[href^="/runs/"]').first.click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}/$"))
    run_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    run_url = page.url

    # Mark this document: a reload would lose the mark.
    page.evaluate("window.__k8x_same_document = true")
    lines_at_load = page.locator("#log").inner_text().count("console line")
    assert lines_at_load < LINES, "the run had already finished when the page opened: nothing was live"

    page.wait_for_function("document.querySelector('#log').textContent.includes('console line 2')", timeout=90_000)
    page.wait_for_timeout(300)
    screenshot(page, "run-live")
    page.wait_for_function(
        f"document.querySelector('#log').textContent.includes('console line {LINES}')", timeout=90_000
    )
    page.wait_for_function("document.querySelector('#run-status').dataset.runStatus === 'succeeded'", timeout=90_000)
    assert page.evaluate("window.__k8x_same_document === true"), "the page reloaded"
    text = page.locator("#log").inner_text()
    for i in range(1, LINES + 1):
        assert text.count(f"console line {i}\n") == 1, f"line {i} missing or repeated:\n{text}"
    assert "Finished: succeeded" in page.locator("#log-state").inner_text()
    page.wait_for_function("document.querySelector('#run-exit-code').textContent.trim() === '0'", timeout=15_000)
    run = Run.objects.get(pk=run_id)
    assert run.status == "succeeded" and run.exit_code == 0 and "console line 10" in run_log_text(run.pk)
    screenshot(page, "run-finished")

    page.goto(f"{base}/projects/{project.slug}/services/hello/")
    assert page.get_by_text("100%").is_visible()
    screenshot(page, "service")
    page.goto(f"{base}/")
    assert "Runs in the last 24 hours: 1" in page.locator("main").inner_text()
    screenshot(page, "dashboard")

    # Bob, of another project: 404 on the run page, and the websocket is refused.
    intruder = new_page()
    login(intruder, base, "bob")
    response = intruder.goto(run_url)
    assert response is not None and response.status == 404
    outcome = intruder.evaluate(
        """(path) => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}${path}`);
            let opened = false, got = [];
            ws.onopen = () => { opened = true; };
            ws.onmessage = (e) => got.push(e.data);
            ws.onclose = (e) => resolve({opened, code: e.code, messages: got});
            setTimeout(() => resolve({opened, timeout: true, messages: got}), 10000);
        })""",
        f"/ws/runs/{run_id}/logs/",
    )
    assert outcome["opened"] is False and not outcome.get("timeout"), outcome
    assert outcome["messages"] == []
    # Alice's socket to the same run is accepted (the refusal above is about Bob).
    accepted = page.evaluate(
        """(path) => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}${path}`);
            ws.onmessage = (e) => { resolve(JSON.parse(e.data).type); ws.close(); };
            ws.onclose = () => resolve("closed");
            setTimeout(() => resolve("timeout"), 10000);
        })""",
        f"/ws/runs/{run_id}/logs/",
    )
    assert accepted == "snapshot"
