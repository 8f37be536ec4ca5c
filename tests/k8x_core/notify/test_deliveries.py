"""Notifications end to end on real parts: a run ends through run_transition (the
one place every status change passes), the notify job runs on a real RQ
SimpleWorker, the webhook reaches a local HTTP server and the e-mail a local
SMTP sink (aiosmtpd)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from email import message_from_bytes
from typing import Any

import pytest
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from k8x_core.models import DeliveryStatus, NotificationDelivery, NotifyChannel, Run, RunStatus, Service, TriggerKind
from k8x_core.notify.rules import rule_save
from k8x_core.runs.configs import secret_set
from k8x_core.runs.logs import run_log_append
from k8x_core.runs.transitions import run_transition
from tests.notify_support import Receiver, SmtpSink, drain
from tests.ports import free_port
from worker.notify_jobs import notify_run
from worker.reconcile import notify_reconcile


def finish(service: Service, status: RunStatus, **fields: Any) -> Run:
    run = Run.objects.create(
        service=service, trigger_kind=TriggerKind.MANUAL, status=RunStatus.RUNNING, correlation_id="corr-7"
    )
    if "log" in fields:
        assert run_log_append(run_id=run.pk, text=fields.pop("log"))
    assert run_transition(run_id=run.pk, to=status, finished_at=timezone.now(), **fields)
    return Run.objects.get(pk=run.pk)


def deliveries(**filters: Any) -> list[NotificationDelivery]:
    return list(NotificationDelivery.objects.filter(**filters).order_by("pk"))


def test_failed_run_sends_one_signed_webhook_and_one_email_without_secrets(
    service: Service, receiver: Receiver, smtp: SmtpSink, queue_name: str
) -> None:
    secret_value = f"s3cr3t-{uuid.uuid4().hex}"
    secret_set(key="DB_PASSWORD", value=secret_value, service=service)
    hook, hook_secret = rule_save(
        project=service.project, name="ops hook", channel=NotifyChannel.WEBHOOK, url=receiver.url
    )
    assert hook_secret  # generated, shown once
    assert hook_secret not in hook.secret_ciphertext
    rule_save(
        project=service.project, service=service, name="mail", channel=NotifyChannel.EMAIL, emails="ops@acme.test"
    )

    run = finish(
        service,
        RunStatus.FAILED,
        reason="BackoffLimitExceeded",
        exit_code=3,
        # Whatever a container printed stays out of notifications.
        message=f"printed {secret_value}",
        log=f"DB_PASSWORD={secret_value}\n",
    )
    drain(queue_name, until=lambda: not deliveries(status=DeliveryStatus.PENDING) and len(deliveries()) == 2)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    expected = "sha256=" + hmac.new(hook_secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-K8X-Signature-256"] == expected
    body = json.loads(request.body)
    assert body == {
        "type": "k8x.run.failed",
        "kind": "failed",
        "project": service.project.slug,
        "service": "billing",
        "rule": "ops hook",
        "run_id": str(run.pk),
        "status": "failed",
        "reason": "BackoffLimitExceeded",
        "exit_code": 3,
        "url": f"http://console.test:8000/runs/{run.pk}/",
        "correlation_id": "corr-7",
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }

    assert len(smtp.messages) == 1
    envelope = smtp.messages[0]
    assert envelope.rcpt_tos == ["ops@acme.test"]
    assert envelope.mail_from == "k8x@k8x.test"
    mail = message_from_bytes(envelope.content)
    assert "billing" in mail["Subject"] and "failed" in mail["Subject"]
    raw = mail.get_payload(decode=True)
    assert isinstance(raw, bytes)
    text = raw.decode()
    assert str(run.pk) in text and "BackoffLimitExceeded" in text

    for blob in (request.body, envelope.content):
        assert secret_value.encode() not in blob
        assert hook_secret.encode() not in blob
    sent = deliveries(run=run)
    assert [(d.channel, d.status, d.attempts, d.kind) for d in sent] == [
        ("webhook", "sent", 1, "failed"),
        ("email", "sent", 1, "failed"),
    ]
    assert sent[0].response_code == 200 and sent[0].sent_at is not None

    # The job running again (an RQ retry, a second enqueue) sends nothing twice.
    assert notify_run(str(run.pk)) == 0
    assert len(receiver.requests) == 1 and len(smtp.messages) == 1


def test_slack_body(service: Service, receiver: Receiver, queue_name: str) -> None:
    rule_save(project=service.project, name="slack", channel=NotifyChannel.WEBHOOK, url=receiver.url, slack=True)
    run = finish(service, RunStatus.TIMED_OUT, reason="DeadlineExceeded")
    drain(queue_name, until=lambda: bool(deliveries(status=DeliveryStatus.SENT)))
    body = json.loads(receiver.requests[0].body)
    assert list(body) == ["text"]
    assert body["text"] == (
        f"K8X: run of {service.project.slug}/billing timed out (reason DeadlineExceeded): "
        f"http://console.test:8000/runs/{run.pk}/"
    )


def test_retried_with_backoff_until_the_receiver_is_up(service: Service, queue_name: str) -> None:
    port = free_port()
    receiver = Receiver(port=port, statuses=[500, 200])
    rule_save(project=service.project, name="hook", channel=NotifyChannel.WEBHOOK, url=receiver.url, secret="k")
    finish(service, RunStatus.FAILED, reason="Error")

    # Nobody listens yet: the first attempt fails and waits for its retry.
    drain(queue_name, until=lambda: bool(deliveries(attempts__gte=1)))
    (first,) = deliveries()
    assert first.status == DeliveryStatus.PENDING
    assert "not reached" in first.last_error

    receiver.start()
    try:
        # Up, but answering 500 once, then 200.
        drain(queue_name, until=lambda: bool(deliveries(status=DeliveryStatus.SENT)), timeout=40)
    finally:
        receiver.stop()
    (done,) = deliveries()
    assert done.attempts >= 3
    assert done.response_code == 200 and done.last_error == ""
    assert len(receiver.requests) == 2
    # Backoff: the 500 and the success are at least the second interval (2 s) apart.
    assert done.sent_at is not None
    assert (done.sent_at - first.updated_at).total_seconds() >= 2


def test_redis_away_when_the_run_ends_loses_no_notification(
    service: Service, receiver: Receiver, queue_name: str, settings: Any
) -> None:
    rule_save(project=service.project, name="hook", channel=NotifyChannel.WEBHOOK, url=receiver.url, secret="k")
    real = settings.RQ_QUEUES[queue_name]
    # Nothing listens on this port: the enqueue after the commit gets a real refused connection.
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_name: {"URL": f"redis://127.0.0.1:{free_port()}/0"}}
    run = finish(service, RunStatus.FAILED, reason="Error")
    assert run.status == RunStatus.FAILED
    assert run.notify_pending
    with pytest.raises(RedisConnectionError):  # the reconciler's loop logs it and tries again
        notify_reconcile(older_than=0)

    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_name: real}
    drain(queue_name, until=lambda: True)
    assert deliveries() == []  # the job was lost with the connection
    assert notify_reconcile(older_than=0) == 1
    assert notify_reconcile(older_than=0) == 0  # its job is queued now: not twice
    drain(queue_name, until=lambda: bool(deliveries(status=DeliveryStatus.SENT)))
    assert len(receiver.requests) == 1
    assert not Run.objects.get(pk=run.pk).notify_pending
    assert notify_reconcile(older_than=0) == 0


def test_no_rule_no_pending_notification(service: Service, queue_name: str) -> None:
    assert not finish(service, RunStatus.FAILED).notify_pending


def test_failed_after_the_last_attempt(service: Service, queue_name: str, settings: Any) -> None:
    settings.K8X_NOTIFY_RETRIES = 1
    settings.K8X_NOTIFY_BACKOFF_SECONDS = 0
    receiver = Receiver(statuses=[503]).start()
    try:
        rule_save(project=service.project, name="hook", channel=NotifyChannel.WEBHOOK, url=receiver.url, secret="k")
        finish(service, RunStatus.FAILED)
        drain(queue_name, until=lambda: bool(deliveries(status=DeliveryStatus.FAILED)))
    finally:
        receiver.stop()
    (d,) = deliveries()
    assert d.attempts == 2
    assert d.response_code == 503
    assert d.last_error.startswith("HTTP 503 from the webhook: receiver says 503")


def test_succeeded_sends_nothing_unless_it_follows_a_failure(
    service: Service, receiver: Receiver, queue_name: str
) -> None:
    rule_save(project=service.project, name="failures", channel=NotifyChannel.WEBHOOK, url=receiver.url, secret="k")
    rule_save(
        project=service.project,
        name="recoveries",
        channel=NotifyChannel.WEBHOOK,
        url=receiver.url,
        secret="k",
        on_failed=False,
        on_timed_out=False,
        on_recovered=True,
    )
    finish(service, RunStatus.SUCCEEDED)
    drain(queue_name, until=lambda: True)
    assert deliveries() == [] and receiver.requests == []

    failed = finish(service, RunStatus.FAILED)
    # A cancelled run between them does not count as the previous outcome.
    finish(service, RunStatus.CANCELLED)
    recovered = finish(service, RunStatus.SUCCEEDED)
    again = finish(service, RunStatus.SUCCEEDED)
    drain(queue_name, until=lambda: len(deliveries(status=DeliveryStatus.SENT)) == 2)
    drain(queue_name, until=lambda: True)
    assert [(d.run_id, d.rule.name, d.kind) for d in deliveries()] == [
        (failed.pk, "failures", "failed"),
        (recovered.pk, "recoveries", "recovered"),
    ]
    assert not deliveries(run=again)
    assert [json.loads(r.body)["kind"] for r in receiver.requests] == ["failed", "recovered"]


def test_rules_of_other_services_and_inactive_rules_stay_quiet(
    service: Service, receiver: Receiver, queue_name: str
) -> None:
    other = Service.objects.create(project=service.project, name="other", image="busybox")
    rule_save(
        project=service.project,
        service=other,
        name="other",
        channel=NotifyChannel.WEBHOOK,
        url=receiver.url,
        secret="k",
    )
    rule_save(
        project=service.project, name="off", channel=NotifyChannel.WEBHOOK, url=receiver.url, secret="k", active=False
    )
    finish(service, RunStatus.FAILED)
    drain(queue_name, until=lambda: True)
    assert deliveries() == [] and receiver.requests == []
