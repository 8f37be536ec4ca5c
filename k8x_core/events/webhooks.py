"""Webhooks: any JSON from a third party, signed with HMAC-SHA256 of the raw
body (``X-Hub-Signature-256: sha256=<hex>``, as GitHub signs), turned into a
CloudEvent of the webhook's type and scoped to the webhook's project.

- GitHub's ``X-GitHub-Event: push`` makes the type ``com.github.push``, and its
  ``X-GitHub-Delivery`` becomes the event id, so a redelivery is recognised
  as a duplicate (``source`` + ``id``).
- The source is the webhook's ``event_source``, else ``k8x/webhooks/<slug>``.
- A form-encoded body (GitHub's other content type) carries the JSON in its
  ``payload`` field.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import shlex
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from k8x_core.audit import Actor, audit_fields, audit_record
from k8x_core.events.ce import CloudEventInvalid, ce_json_parse, ce_media_type, ce_new
from k8x_core.events.ingest import IngestRefused, Sender
from k8x_core.events.reserved import source_reserved_problem
from k8x_core.models import Project, Webhook

SIGNATURE_HEADER = "X-Hub-Signature-256"
GITHUB_EVENT_HEADER = "X-GitHub-Event"
GITHUB_DELIVERY_HEADER = "X-GitHub-Delivery"
EXAMPLE_BODY = '{"hello": "world"}'


def webhook_create(
    *,
    project: Project,
    slug: str,
    event_type: str,
    event_source: str = "",
    name: str = "",
    secret: str = "",
    actor: Actor | AbstractBaseUser | None = None,
) -> tuple[Webhook, str]:
    """Create a webhook; returns it and its secret (generated when empty)."""
    reserved = source_reserved_problem(source=event_source)
    if reserved:
        raise ValidationError({"event_source": reserved})
    secret = secret or secrets.token_urlsafe(32)
    webhook = Webhook(project=project, slug=slug, name=name, event_type=event_type, event_source=event_source)
    webhook.set_secret(secret)
    webhook.full_clean(exclude=["secret_ciphertext"])
    with transaction.atomic():
        webhook.save()
        audit_record(
            project=project,
            actor=actor,
            action="create",
            kind="webhook",
            name=slug,
            object_id=webhook.pk,
            before=None,
            after=audit_fields(webhook),
        )
    return webhook, secret


def webhook_delete(*, webhook: Webhook, actor: Actor | AbstractBaseUser | None = None) -> None:
    with transaction.atomic():
        audit_record(
            project=webhook.project,
            actor=actor,
            action="delete",
            kind="webhook",
            name=webhook.slug,
            object_id=webhook.pk,
            before=audit_fields(webhook),
            after=None,
        )
        webhook.delete()


def webhook_signature(*, secret: str, body: bytes) -> str:
    """The header value a sender puts in X-Hub-Signature-256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_signature_check(*, secret: str, body: bytes, header: str | None) -> None:
    if not header:
        raise IngestRefused(
            401, f"missing {SIGNATURE_HEADER} header (sha256=<hex HMAC of the body>)", field=SIGNATURE_HEADER
        )
    if not header.startswith("sha256="):
        raise IngestRefused(401, f"{SIGNATURE_HEADER} must be 'sha256=<hex>'", field=SIGNATURE_HEADER)
    expected = webhook_signature(secret=secret, body=body)
    # Constant time: the comparison must not tell how much of a guess was right.
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise IngestRefused(401, f"{SIGNATURE_HEADER} does not match the body", field=SIGNATURE_HEADER)


def webhook_get(*, slug: str) -> Webhook:
    webhook = Webhook.objects.select_related("project").filter(slug=slug, active=True).first()
    if webhook is None:
        raise IngestRefused(404, f"unknown webhook {slug!r}", field="slug")
    return webhook


def _github_type(event: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_.-]", "_", event.strip().lower())
    return f"com.github.{cleaned}"


def webhook_event_build(*, webhook: Webhook, body: bytes, headers: Mapping[str, str]) -> tuple[dict[str, Any], Sender]:
    """Check the signature, parse the body and build the event (not yet
    scoped) and its sender. Raises IngestRefused."""
    lower = {k.lower(): v for k, v in headers.items()}
    webhook_signature_check(secret=webhook.reveal_secret(), body=body, header=lower.get(SIGNATURE_HEADER.lower()))
    media = ce_media_type(lower.get("content-type"))
    text: bytes | str = body
    if media == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode(), strict_parsing=True)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IngestRefused(400, f"form body is malformed: {exc}", field="body") from exc
        if "payload" not in form:
            raise IngestRefused(400, "a form-encoded webhook body needs a 'payload' field with JSON", field="payload")
        text = form["payload"][0]
    elif media and media != "application/json" and not media.endswith("+json"):
        raise IngestRefused(415, f"unsupported content type {media!r}: webhooks take JSON", field="content-type")
    try:
        data = ce_json_parse(text)
    except CloudEventInvalid as exc:
        raise IngestRefused(400, exc.message, field=exc.field) from None
    github_event = lower.get(GITHUB_EVENT_HEADER.lower(), "").strip()
    event_type = _github_type(github_event) if github_event else webhook.event_type
    delivery = lower.get(GITHUB_DELIVERY_HEADER.lower(), "").strip()
    try:
        event = ce_new(
            type=event_type,
            source=webhook.event_source or f"k8x/webhooks/{webhook.slug}",
            id=delivery or str(uuid.uuid4()),
            data=data,
        )
    except CloudEventInvalid as exc:
        raise IngestRefused(400, exc.message, field=exc.field) from exc
    sender = Sender(kind="webhook", project_slug=webhook.project.slug, rate_key=f"webhook:{webhook.slug}")
    return event, sender


def webhook_url(*, webhook: Webhook, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/api/webhooks/{webhook.slug}"


def webhook_curl_example(*, webhook: Webhook, base_url: str) -> str:
    """A working ``curl`` command for the webhook's console page.

    The signature shown is for the example body only, so the page does not
    reveal the secret; the comment shows how to sign any other body."""
    url = webhook_url(webhook=webhook, base_url=base_url)
    signature = webhook_signature(secret=webhook.reveal_secret(), body=EXAMPLE_BODY.encode())
    return (
        f"curl -sS -X POST {shlex.quote(url)} \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -H '{SIGNATURE_HEADER}: {signature}' \\\n"
        f"  --data-binary {shlex.quote(EXAMPLE_BODY)}\n"
        f"\n"
        f"# Any other body: sign it with the webhook's secret\n"
        f'BODY=\'{{"your": "json"}}\'\n'
        f"SIG=$(printf '%s' \"$BODY\" | openssl dgst -sha256 -hmac \"$WEBHOOK_SECRET\" | sed 's/^.* //')\n"
        f"curl -sS -X POST {shlex.quote(url)} -H 'Content-Type: application/json' "
        f'-H "{SIGNATURE_HEADER}: sha256=$SIG" --data-binary "$BODY"\n'
    )
