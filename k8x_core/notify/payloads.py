"""What a notification says. Built from a run's outcome fields only: project,
service, run id, status, reason, exit code, console URL, correlation id, times.
Never the run's environment, configs, secrets, event data or log (a log may
hold anything a container printed, so none of it is sent)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings

from k8x_core.models import NotificationRule, Run
from k8x_core.notify.rules import Kind

SIGNATURE_HEADER = "X-K8X-Signature-256"

_HEADLINE = {
    Kind.FAILED: "failed",
    Kind.TIMED_OUT: "timed out",
    Kind.RECOVERED: "succeeded again after a failure",
    Kind.TEST: "test notification",
}


def run_console_url(*, run_id: object) -> str:
    return f"{settings.K8X_CONSOLE_URL.rstrip('/')}/runs/{run_id}/"


def payload_build(*, rule: NotificationRule, run: Run | None, kind: str) -> dict[str, Any]:
    """The JSON document of a notification (``run`` None: a test)."""
    if run is None:
        return {
            "type": f"k8x.notification.{Kind.TEST}",
            "kind": Kind.TEST,
            "project": rule.project.slug,
            "service": rule.service.name if rule.service is not None else None,
            "rule": rule.name,
            "run_id": None,
            "status": None,
            "reason": None,
            "exit_code": None,
            "url": None,
            "correlation_id": None,
            "finished_at": None,
        }
    return {
        "type": f"k8x.run.{kind}",
        "kind": kind,
        "project": run.service.project.slug,
        "service": run.service.name,
        "rule": rule.name,
        "run_id": str(run.pk),
        "status": run.status,
        "reason": run.reason,
        "exit_code": run.exit_code,
        "url": run_console_url(run_id=run.pk),
        "correlation_id": run.correlation_id,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def payload_headline(*, payload: dict[str, Any]) -> str:
    """One line for people (the e-mail subject; Slack's text with the URL)."""
    where = f"{payload['project']}/{payload['service']}" if payload["service"] else payload["project"]
    if payload["kind"] == Kind.TEST:
        return f"K8X: test notification of rule {payload['rule']} ({where})"
    details = []
    if payload["reason"]:
        details.append(f"reason {payload['reason']}")
    if payload["exit_code"] is not None:
        details.append(f"exit code {payload['exit_code']}")
    suffix = f" ({', '.join(details)})" if details else ""
    return f"K8X: run of {where} {_HEADLINE[payload['kind']]}{suffix}"


def payload_text(*, payload: dict[str, Any]) -> str:
    headline = payload_headline(payload=payload)
    return f"{headline}: {payload['url']}" if payload["url"] else headline


def payload_body(*, rule: NotificationRule, payload: dict[str, Any]) -> bytes:
    """The webhook body: the payload, or ``{"text": ...}`` for Slack-compatible receivers."""
    doc = {"text": payload_text(payload=payload)} if rule.slack else payload
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def payload_email(*, payload: dict[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body of a notification e-mail."""
    lines = [payload_text(payload=payload), ""]
    lines += [f"{key}: {value}" for key, value in payload.items() if value is not None]
    return payload_headline(payload=payload)[:200], "\n".join(lines) + "\n"


def payload_signature(*, secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``, as incoming webhooks are signed."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
