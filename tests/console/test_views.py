"""Console pages: login, roles per view, project isolation (404, not 403), form errors, pagination."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from k8x_core.models import Config, Membership, Project, Role, Run, RunStatus, Scope, Secret, Service, Trigger
from tests.console.conftest import World, client_for

pytestmark = pytest.mark.django_db


def pages(w: World) -> list[str]:
    s = w.service
    return [
        reverse("console:dashboard"),
        reverse("console:service_list"),
        reverse("console:run_list"),
        reverse("console:event_list"),
        reverse("console:project_list"),
        reverse("console:event_send"),
        reverse("console:project_detail", args=["acme"]),
        reverse("console:project_configs", args=["acme"]),
        reverse("console:project_secrets", args=["acme"]),
        reverse("console:project_members", args=["acme"]),
        reverse("console:service_detail", args=["acme", s.name]),
        reverse("console:run_detail", args=[w.run.pk]),
        reverse("console:event_detail", args=[w.event.pk]),
        reverse("console:correlation_detail", args=["flow-acme"]),
    ]


def test_every_page_needs_login(world: World) -> None:
    anonymous = Client()
    for url in pages(world):
        response = anonymous.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


def test_login_page_logs_in(world: World) -> None:
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'<label for="id_username">' in page.content
    bad = client.post("/login/", {"username": "user1", "password": "wrong"})
    assert b"didn&#x27;t match" in bad.content or b"didn't match" in bad.content
    good = client.post("/login/", {"username": "user1", "password": "console-test-pw-1", "next": "/runs/"})
    assert good.status_code == 302 and good["Location"] == "/runs/"


def test_every_page_renders_for_a_project_user(world: World) -> None:
    client = client_for(world.user)
    for url in pages(world):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert b'<main id="main"' in response.content


def test_no_external_resources_in_pages(world: World) -> None:
    client = client_for(world.owner)
    for url in pages(world):
        html = client.get(url).content.decode()
        for attr in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert not attr.startswith(("http://", "https://", "//")), (url, attr)


def test_other_projects_resources_are_404(world: World) -> None:
    """A member of `other` guessing acme's URLs learns nothing: 404 everywhere."""
    client = client_for(world.outsider)
    urls = [
        reverse("console:run_detail", args=[world.run.pk]),
        reverse("console:run_badge", args=[world.run.pk]),
        reverse("console:run_summary", args=[world.run.pk]),
        reverse("console:run_log_download", args=[world.run.pk]),
        reverse("console:service_detail", args=["acme", "billing"]),
        reverse("console:service_edit", args=["acme", "billing"]),
        reverse("console:project_detail", args=["acme"]),
        reverse("console:project_secrets", args=["acme"]),
        reverse("console:event_detail", args=[world.event.pk]),
        reverse("console:correlation_detail", args=["flow-acme"]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    for url in [
        reverse("console:run_cancel", args=[world.run.pk]),
        reverse("console:run_rerun", args=[world.run.pk]),
        reverse("console:service_toggle", args=["acme", "billing"]),
        reverse("console:service_run", args=["acme", "billing"]),
        reverse("console:trigger_create", args=["acme", "billing"]),
        reverse("console:event_replay", args=[world.event.pk]),
    ]:
        assert client.post(url).status_code == 404, url
    world.service.refresh_from_db()
    assert world.service.active  # the toggle did nothing


def test_lists_show_only_own_projects(world: World) -> None:
    client = client_for(world.user)
    runs = client.get(reverse("console:run_list")).content.decode()
    assert str(world.run.pk)[:8] in runs
    assert str(world.other_run.pk)[:8] not in runs
    services = client.get(reverse("console:service_list")).content.decode()
    assert "billing" in services and "secretive" not in services
    events = client.get(reverse("console:event_list")).content.decode()
    assert "com.acme.order" in events and "com.other.thing" not in events
    dash = client.get(reverse("console:dashboard")).content.decode()
    assert "secretive" not in dash
    projects = client.get(reverse("console:project_list")).content.decode()
    assert "acme" in projects and ">Other<" not in projects


def test_superuser_sees_everything(world: World) -> None:
    from tests.console.conftest import make_user

    staff = make_user("root1", is_superuser=True, is_staff=True)
    client = client_for(staff)
    assert client.get(reverse("console:run_detail", args=[world.other_run.pk])).status_code == 200
    assert "secretive" in client.get(reverse("console:service_list")).content.decode()


@pytest.mark.parametrize(
    ("who", "expected"),
    [("user", 403), ("admin", 200), ("owner", 200), ("outsider", 404)],
)
def test_service_create_needs_admin(world: World, who: str, expected: int) -> None:
    client = client_for(getattr(world, who))
    assert client.get(reverse("console:service_create", args=["acme"])).status_code == expected


@pytest.mark.parametrize(("who", "expected"), [("user", 403), ("admin", 403), ("owner", 302)])
def test_secrets_need_owner(world: World, who: str, expected: int) -> None:
    client = client_for(getattr(world, who))
    response = client.post(
        reverse("console:project_secrets", args=["acme"]), {"key": "DB_PASSWORD", "value": "hunter2"}
    )
    assert response.status_code == expected
    assert Secret.objects.filter(key="DB_PASSWORD").exists() == (expected == 302)


def test_secret_value_is_never_shown(world: World) -> None:
    client = client_for(world.owner)
    client.post(reverse("console:project_secrets", args=["acme"]), {"key": "DB_PASSWORD", "value": "hunter2-xyz"})
    secret = Secret.objects.get(key="DB_PASSWORD")
    assert secret.reveal() == "hunter2-xyz" and secret.scope == Scope.PROJECT
    for url in [
        reverse("console:project_secrets", args=["acme"]),
        reverse("console:service_detail", args=["acme", "billing"]),
        reverse("console:run_detail", args=[world.run.pk]),
    ]:
        html = client.get(url).content.decode()
        assert "DB_PASSWORD" in html and "hunter2-xyz" not in html, url


@pytest.mark.parametrize(("who", "expected"), [("user", 403), ("admin", 302)])
def test_configs_need_admin(world: World, who: str, expected: int) -> None:
    client = client_for(getattr(world, who))
    response = client.post(
        reverse("console:project_configs", args=["acme"]), {"key": "COLOR", "value": "blue", "service": "billing"}
    )
    assert response.status_code == expected
    if expected == 302:
        assert Config.objects.get(key="COLOR").service == world.service


def test_config_form_errors(world: World) -> None:
    client = client_for(world.admin)
    response = client.post(reverse("console:project_configs", args=["acme"]), {"key": "K8X_RUN_ID", "value": "x"})
    assert response.status_code == 200
    assert "reserved for the container contract" in response.content.decode()
    response = client.post(reverse("console:project_configs", args=["acme"]), {"key": "1bad", "value": "x"})
    assert "letters, digits and _" in response.content.decode()


@pytest.mark.parametrize(("who", "expected"), [("user", 403), ("admin", 403), ("owner", 302)])
def test_members_need_owner(world: World, who: str, expected: int) -> None:
    client = client_for(getattr(world, who))
    response = client.post(reverse("console:project_members", args=["acme"]), {"username": "outsider1", "role": "user"})
    assert response.status_code == expected
    assert Membership.objects.filter(project=world.acme, user=world.outsider).exists() == (expected == 302)


def test_member_form_names_unknown_user(world: World) -> None:
    client = client_for(world.owner)
    response = client.post(reverse("console:project_members", args=["acme"]), {"username": "nobody", "role": "user"})
    assert "No user named nobody" in response.content.decode()


def test_api_key_shown_once(world: World) -> None:
    client = client_for(world.admin)
    response = client.post(reverse("console:project_apikeys", args=["acme"]), {"name": "ci"})
    html = response.content.decode()
    raw = re.search(r'<code id="new-api-key">([^<]+)</code>', html)
    assert raw is not None and raw.group(1).startswith("k8x_")
    assert response["Cache-Control"] == "no-store"
    again = client.get(reverse("console:project_apikeys", args=["acme"])).content.decode()
    assert raw.group(1) not in again and "ci" in again
    assert client_for(world.user).get(reverse("console:project_apikeys", args=["acme"])).status_code == 403


def test_webhook_page_shows_url_and_curl(world: World) -> None:
    client = client_for(world.admin)
    response = client.post(
        reverse("console:project_webhooks", args=["acme"]), {"slug": "gh-acme", "event_type": "com.github.push"}
    )
    html = response.content.decode()
    secret = re.search(r'<code id="new-webhook-secret">([^<]+)</code>', html)
    assert secret is not None
    assert "/api/webhooks/gh-acme" in html and "curl -sS -X POST" in html
    again = client.get(reverse("console:project_webhooks", args=["acme"])).content.decode()
    assert secret.group(1) not in again
    dup = client.post(reverse("console:project_webhooks", args=["acme"]), {"slug": "gh-acme", "event_type": "x"})
    assert "slug is taken" in dup.content.decode()


# --- services -------------------------------------------------------------------


def test_service_form_errors_at_the_field(world: World) -> None:
    client = client_for(world.admin)
    url = reverse("console:service_create", args=["acme"])
    response = client.post(
        url,
        {
            "name": "Bad_Name",
            "image": "",
            "resources": "{not json",
            "schedule": "every day",
            "parameters_schema": '{"type": "object", "properties": {"n": {"type": "nonsense"}}}',
            "job_template": "",
            "retries": "0",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Use a DNS label" in html
    assert "Give an image, or a Job template" in html
    assert "Not valid JSON" in html
    assert "Not a valid cron expression" in html
    assert "Not a valid JSON Schema" in html
    assert not Service.objects.filter(project=world.acme).exclude(pk=world.service.pk).exists()


def test_service_form_rejects_bad_job_template_yaml(world: World) -> None:
    client = client_for(world.admin)
    response = client.post(
        reverse("console:service_create", args=["acme"]),
        {"name": "tpl", "job_template": "kind: Deployment\napiVersion: apps/v1\n", "retries": "0"},
    )
    html = response.content.decode()
    assert "kind must be Job or Pod" in html
    assert 'id="id_job_template_errors"' in html


def test_service_name_clash(world: World) -> None:
    client = client_for(world.admin)
    response = client.post(
        reverse("console:service_create", args=["acme"]), {"name": "billing", "image": "busybox", "retries": "0"}
    )
    assert "already has a service named billing" in response.content.decode()


def test_service_list_filters(world: World) -> None:
    Service.objects.create(project=world.acme, name="mailer", image="busybox", tags=["mail"], active=False)
    client = client_for(world.user)
    by_tag = client.get(reverse("console:service_list") + "?tag=money").content.decode()
    assert "billing" in by_tag and "mailer" not in by_tag
    inactive = client.get(reverse("console:service_list") + "?active=no").content.decode()
    assert "mailer" in inactive and ">billing<" not in inactive


def test_service_toggle_and_delete(world: World) -> None:
    client = client_for(world.admin)
    client.post(reverse("console:service_toggle", args=["acme", "billing"]))
    world.service.refresh_from_db()
    assert not world.service.active
    assert client_for(world.user).post(reverse("console:service_toggle", args=["acme", "billing"])).status_code == 403
    confirm = client.get(reverse("console:service_delete", args=["acme", "billing"]))
    assert "cannot be undone" in confirm.content.decode()
    client.post(reverse("console:service_delete", args=["acme", "billing"]), {"confirm_name": "wrong"})
    assert Service.objects.filter(pk=world.service.pk).exists()
    client.post(reverse("console:service_delete", args=["acme", "billing"]), {"confirm_name": "billing"})
    assert not Service.objects.filter(pk=world.service.pk).exists()


def test_service_detail_shows_stats(world: World) -> None:
    now = timezone.now()
    Run.objects.filter(pk=world.run.pk).update(
        status=RunStatus.SUCCEEDED, started_at=now - timedelta(seconds=30), finished_at=now
    )
    html = client_for(world.user).get(reverse("console:service_detail", args=["acme", "billing"])).content.decode()
    assert "100%" in html and "30.0 s" in html


# --- triggers -------------------------------------------------------------------


def test_trigger_add_edit_remove(world: World) -> None:
    client = client_for(world.admin)
    base = ["acme", "billing"]
    response = client.post(
        reverse("console:trigger_create", args=base),
        {
            "event_type": "com.acme.order.*",
            "source_glob": "/shop/*",
            "cel_expression": "event.data.amount > 100",
            "active": "on",
        },
    )
    assert response.status_code == 302
    trigger = Trigger.objects.get(service=world.service)
    assert trigger.cel_expression == "event.data.amount > 100"
    client.post(reverse("console:trigger_edit", args=[*base, trigger.pk]), {"event_type": "com.acme.x", "active": "on"})
    trigger.refresh_from_db()
    assert trigger.event_type == "com.acme.x" and trigger.cel_expression == ""
    client.post(reverse("console:trigger_delete", args=[*base, trigger.pk]))
    assert not Trigger.objects.filter(pk=trigger.pk).exists()


def test_trigger_cel_checked_on_save(world: World) -> None:
    client = client_for(world.admin)
    response = client.post(
        reverse("console:trigger_create", args=["acme", "billing"]),
        {"event_type": "com.acme.order", "cel_expression": "event.data.amount >"},
    )
    assert response.status_code == 400
    assert "invalid CEL expression" in response.content.decode()
    assert not Trigger.objects.filter(service=world.service).exists()


def test_trigger_needs_admin(world: World) -> None:
    response = client_for(world.user).post(
        reverse("console:trigger_create", args=["acme", "billing"]), {"event_type": "x"}
    )
    assert response.status_code == 403


def test_trigger_sample_box(world: World) -> None:
    Trigger.objects.create(
        service=world.service, event_type="com.acme.order.*", cel_expression="event.data.amount > 100"
    )
    url = reverse("console:trigger_test", args=["acme", "billing"])
    # It evaluates an expression of the sender's choosing: admins only.
    assert client_for(world.user).post(url, {"sample": "{}"}).status_code == 403
    client = client_for(world.admin)
    big = '{"specversion":"1.0","id":"1","source":"/s","type":"com.acme.order.created","data":{"amount":150}}'
    small = big.replace("150", "50")
    assert "matches" in client.post(url, {"sample": big}).content.decode()
    assert "no match" in client.post(url, {"sample": small}).content.decode()
    assert "not valid JSON" in client.post(url, {"sample": "{oops"}).content.decode()


# --- runs -----------------------------------------------------------------------


def test_run_detail_contents(world: World) -> None:
    Secret.objects.create(
        scope=Scope.SERVICE, project=world.acme, service=world.service, key="API_TOKEN", ciphertext="x"
    )
    Config.objects.create(scope=Scope.PROJECT, project=world.acme, key="REGION", value="eu-1")
    html = client_for(world.user).get(reverse("console:run_detail", args=[world.run.pk])).content.decode()
    assert "hello" in html and "world" in html  # the stored log so far
    assert f"/ws/runs/{world.run.pk}/logs/" in html
    assert "API_TOKEN" in html and "REGION" in html and "eu-1" in html and "K8X_RUN_ID" in html
    assert "com.acme.order" in html  # event payload
    assert reverse("console:correlation_detail", args=["flow-acme"]) in html
    assert "Cancel" in html and "Re-run" in html


def test_run_log_download(world: World) -> None:
    response = client_for(world.user).get(reverse("console:run_log_download", args=[world.run.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "attachment" in response["Content-Disposition"]
    assert response.content.decode() == world.run.log


def test_run_badge_polls_until_terminal(world: World) -> None:
    client = client_for(world.user)
    running = client.get(reverse("console:run_badge", args=[world.run.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in running and "running" in running
    Run.objects.filter(pk=world.run.pk).update(status=RunStatus.SUCCEEDED)
    done = client.get(reverse("console:run_badge", args=[world.run.pk])).content.decode()
    assert "hx-trigger" not in done and "succeeded" in done


def test_runs_list_filters(world: World) -> None:
    other = Service.objects.create(project=world.acme, name="mailer", image="busybox")
    failed = Run.objects.create(service=other, trigger_kind="manual", status=RunStatus.FAILED)
    client = client_for(world.user)
    url = reverse("console:run_list")

    def ids(query: str) -> set[str]:
        return set(re.findall(r'href="/runs/([0-9a-f-]{36})/"', client.get(url + query).content.decode()))

    assert ids("") == {str(world.run.pk), str(failed.pk)}
    assert ids(f"?service={other.pk}") == {str(failed.pk)}
    assert ids("?status=failed") == {str(failed.pk)}
    assert ids("?trigger=event") == {str(world.run.pk)}
    future = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert ids(f"?since={future}") == set()
    # Another project's service id is not a valid choice: the filter is ignored with an error, nothing leaks.
    page = client.get(url + f"?service={world.other_service.pk}").content.decode()
    assert "Select a valid choice" in page and str(world.other_run.pk) not in page


def test_runs_list_keyset_pagination(world: World) -> None:
    base = timezone.now() - timedelta(days=1)
    made = [Run(service=world.service, trigger_kind="manual", status=RunStatus.SUCCEEDED) for _ in range(120)]
    Run.objects.bulk_create(made)
    # Distinct, known creation times (auto_now_add set them all to ~now).
    for i, run in enumerate(made):
        Run.objects.filter(pk=run.pk).update(created_at=base + timedelta(seconds=i))
    client = client_for(world.user)
    url = reverse("console:run_list")
    pattern = r'href="/runs/([0-9a-f-]{36})/"'
    seen: list[str] = []
    html = client.get(url + "?trigger=manual").content.decode()
    pages_seen = 0
    while True:
        pages_seen += 1
        seen += re.findall(pattern, html)
        older = re.search(r'<a rel="next" href="([^"]+)"', html)
        if not older:
            break
        html = client.get(url + older.group(1).replace("&amp;", "&")).content.decode()
    assert pages_seen == 3
    expected = [str(r.pk) for r in sorted(made, key=lambda r: r.pk)]  # noqa: F841 (order checked below)
    assert len(seen) == 120 and len(set(seen)) == 120
    newest_first = [str(r.pk) for r in reversed(made)]
    assert seen == newest_first
    newer = re.search(r'<a rel="prev" href="([^"]+)"', html)
    assert newer is not None
    back = client.get(url + newer.group(1).replace("&amp;", "&")).content.decode()
    assert re.findall(pattern, back) == newest_first[50:100]


# --- events ---------------------------------------------------------------------


def test_events_list_outcome_filter(world: World) -> None:
    from k8x_core.models import Event, EventOutcome

    Event.objects.create(outcome=EventOutcome.REJECTED, reason="missing attribute 'type'", project=world.acme)
    client = client_for(world.user)
    html = client.get(reverse("console:event_list") + "?outcome=rejected").content.decode()
    assert "missing attribute" in html and "com.acme.order" not in html


def test_correlation_view_in_time_order(world: World) -> None:
    html = client_for(world.user).get(reverse("console:correlation_detail", args=["flow-acme"])).content.decode()
    assert html.index("com.acme.order") < html.index(str(world.run.pk)[:8])


def test_send_event_form_errors(world: World) -> None:
    client = client_for(world.user)
    response = client.post(
        reverse("console:event_send"),
        {"project": world.acme.pk, "event_type": "", "event_source": "x", "payload": "{bad"},
    )
    html = response.content.decode()
    assert "This field is required" in html and "Not valid JSON" in html
    # Only the user's projects are choices.
    assert f'value="{world.other.pk}"' not in client.get(reverse("console:event_send")).content.decode()


def test_manual_run_form_from_schema(world: World, settings) -> None:
    settings.K8X_QUEUE = "console-test-queue"
    Service.objects.filter(pk=world.service.pk).update(
        parameters_schema={
            "type": "object",
            "properties": {
                "count": {"type": "integer", "minimum": 1, "default": 2},
                "mode": {"enum": ["fast", "slow"]},
                "note": {"type": "string"},
            },
            "required": ["count"],
        }
    )
    client = client_for(world.user)
    html = client.get(reverse("console:service_detail", args=["acme", "billing"])).content.decode()
    assert 'name="count"' in html and 'name="mode"' in html and 'name="note"' in html
    url = reverse("console:service_run", args=["acme", "billing"])
    bad = client.post(url, {"count": "0", "mode": '"fast"'})
    assert bad.status_code == 200 and "greater than or equal to 1" in bad.content.decode()
    good = client.post(url, {"count": "3", "mode": '"slow"'})
    assert good.status_code == 302
    run = Run.objects.get(trigger_kind="manual", service=world.service)
    assert run.params == {"count": 3, "mode": "slow"} and run.requested_by == world.user
    assert good["Location"] == reverse("console:run_detail", args=[run.pk])


def test_manual_run_refused_when_inactive(world: World) -> None:
    Service.objects.filter(pk=world.service.pk).update(active=False)
    response = client_for(world.user).post(reverse("console:service_run", args=["acme", "billing"]))
    assert "inactive" in response.content.decode()
    assert not Run.objects.filter(trigger_kind="manual").exists()


def test_dashboard_counts(world: World) -> None:
    now = timezone.now()
    Run.objects.create(service=world.service, trigger_kind="manual", status=RunStatus.FAILED, reason="OOMKilled")
    Run.objects.filter(status=RunStatus.FAILED).update(started_at=now - timedelta(seconds=5), finished_at=now)
    html = client_for(world.user).get(reverse("console:dashboard")).content.decode()
    assert "Runs in the last 24 hours: 2" in html
    assert "OOMKilled" in html
    assert "<svg" in html and "c-failed" in html
    assert "Most failing" in html and "1 of 2 failed" in html


def test_project_role_visible(world: World) -> None:
    html = client_for(world.admin).get(reverse("console:project_detail", args=["acme"])).content.decode()
    assert "your role: admin" in html
    assert isinstance(Project.objects.get(slug="acme"), Project)
    assert Role.ADMIN == "admin"


def test_rerun_creates_a_retry_run(world: World) -> None:
    client = client_for(world.user)
    response = client.post(reverse("console:run_rerun", args=[world.run.pk]))
    assert response.status_code == 302
    retry = Run.objects.get(retry_of=world.run)
    assert retry.trigger_kind == "retry" and retry.correlation_id == "flow-acme" and retry.requested_by == world.user
    assert response["Location"] == reverse("console:run_detail", args=[retry.pk])
