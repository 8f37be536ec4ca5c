"""The project's Notifications page: rules for admins (the secret shown once, URL
paths never), the test button (a real delivery to a local receiver through a
burst RQ worker), recent deliveries listed."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse

from k8x_core.models import DeliveryStatus, NotificationDelivery, NotificationRule
from tests.console.conftest import World, client_for
from tests.notify_support import Receiver, drain


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _new_rule(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "ops",
        "service": "",
        "on_failed": "on",
        "on_timed_out": "on",
        "channel": "webhook",
        "url": url,
        "emails": "",
        "active": "on",
        **extra,
    }


def test_admin_creates_a_rule_and_sends_a_test_notification(
    transactional_db: None, world: World, receiver: Receiver, queue_name: str
) -> None:
    url = reverse("console:project_notifications", kwargs={"slug": "acme"})
    admin = client_for(world.admin)
    hook_url = receiver.url + "/T000/B000/token-in-the-path"
    page = admin.post(url, _new_rule(hook_url))
    assert page.status_code == 200
    rule = NotificationRule.objects.get(project=world.acme, name="ops")
    html = page.content.decode()
    secret = rule.reveal_secret()
    assert f'<code id="new-notification-secret">{secret}</code>' in html
    assert "token-in-the-path" not in html

    # Shown once: the next visit has neither the secret nor the URL's path.
    again = admin.get(url).content.decode()
    assert secret not in again and "token-in-the-path" not in again
    assert f"http://127.0.0.1:{receiver.port}/…" in again

    response = admin.post(reverse("console:notification_rule_test", kwargs={"slug": "acme", "rule_id": rule.pk}))
    assert response.status_code == 302
    drain(queue_name, until=lambda: NotificationDelivery.objects.filter(status=DeliveryStatus.SENT).exists())
    (request,) = receiver.requests
    assert request.path == "/hook/T000/B000/token-in-the-path"
    signed = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-K8X-Signature-256"] == signed
    body = json.loads(request.body)
    assert body["kind"] == "test" and body["project"] == "acme" and body["rule"] == "ops"

    listed = admin.get(url).content.decode()
    delivery = NotificationDelivery.objects.get()
    assert f'data-delivery="{delivery.pk}"' in listed
    assert delivery.kind == "test" and delivery.run is None and delivery.attempts == 1


def test_rule_errors_name_the_field(world: World) -> None:
    url = reverse("console:project_notifications", kwargs={"slug": "acme"})
    admin = client_for(world.admin)
    page = admin.post(url, _new_rule("ftp://example.test/x"))
    assert "the webhook URL must be http:// or https:// with a host" in page.content.decode()
    page = admin.post(url, _new_rule("", channel="email", emails="ops@acme.test, not-an-address"))
    assert "&#x27;not-an-address&#x27; is not an e-mail address" in page.content.decode()
    page = admin.post(url, {**_new_rule("http://example.test/"), "on_failed": "", "on_timed_out": ""})
    assert "choose at least one of failed, timed out, succeeded after failure" in page.content.decode()
    assert not NotificationRule.objects.exists()


def test_edit_keeps_url_and_secret_when_left_empty(world: World) -> None:
    admin = client_for(world.admin)
    admin.post(
        reverse("console:project_notifications", kwargs={"slug": "acme"}),
        _new_rule("http://example.test/x", secret="given-secret"),
    )
    rule = NotificationRule.objects.get()
    edit = reverse("console:notification_rule_edit", kwargs={"slug": "acme", "rule_id": rule.pk})
    assert "given-secret" not in admin.get(edit).content.decode()
    response = admin.post(edit, _new_rule("", name="ops renamed", service="billing", on_recovered="on"))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.url, rule.reveal_secret(), rule.service) == (
        "ops renamed",
        "http://example.test/x",
        "given-secret",
        world.service,
    )
    assert rule.on_recovered

    admin.post(reverse("console:notification_rule_delete", kwargs={"slug": "acme", "rule_id": rule.pk}))
    assert not NotificationRule.objects.exists()


def test_users_see_rules_but_only_admins_change_them(world: World) -> None:
    NotificationRule.objects.create(project=world.acme, name="mail", channel="email", emails=["ops@acme.test"])
    rule = NotificationRule.objects.get()
    url = reverse("console:project_notifications", kwargs={"slug": "acme"})
    user = client_for(world.user)
    page = user.get(url).content.decode()
    assert "mail" in page and "Send test notification" not in page and "New notification rule" not in page
    assert user.post(url, _new_rule("http://example.test/")).status_code == 403
    test_url = reverse("console:notification_rule_test", kwargs={"slug": "acme", "rule_id": rule.pk})
    assert user.post(test_url).status_code == 403
    # Another project's members do not learn it exists.
    assert client_for(world.outsider).get(url).status_code == 404
