"""Deliveries: one row per rule and run (or test), sent from the RQ queue
(``worker.notify_jobs``) with retries and exponential backoff, each attempt
counted on the row."""

from __future__ import annotations

import logging
import smtplib
import uuid
from collections.abc import Sequence

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rq import Retry

from k8x_core.models import DeliveryStatus, NotificationDelivery, NotificationRule, NotifyChannel, Run
from k8x_core.notify.payloads import (
    SIGNATURE_HEADER,
    payload_body,
    payload_build,
    payload_email,
    payload_signature,
)
from k8x_core.notify.rules import Kind, rules_for_run, run_notify_kind
from k8x_core.runs.finish import run_notify_done
from k8x_core.runs.queue import launch_queue

log = logging.getLogger(__name__)

DELIVER_JOB = "worker.notify_jobs.notify_deliver"
_ERROR_CHARS = 500


class DeliveryError(Exception):
    """A send that did not get through; ``code`` is the HTTP status when there was one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def delivery_retry() -> Retry | None:
    """K8X_NOTIFY_RETRIES more attempts, waiting base, 2*base, 4*base, ... seconds."""
    retries = int(settings.K8X_NOTIFY_RETRIES)
    if retries <= 0:
        return None
    base = max(0, int(settings.K8X_NOTIFY_BACKOFF_SECONDS))
    return Retry(max=retries, interval=[base * 2**i for i in range(retries)])


def delivery_job_id(delivery_id: int) -> str:
    return f"notify-delivery-{delivery_id}"


def deliveries_enqueue_now(*, delivery_ids: Sequence[int]) -> None:
    queue = launch_queue()
    for delivery_id in delivery_ids:
        # By dotted path: the domain does not import the worker.
        queue.enqueue(
            DELIVER_JOB,
            delivery_id,
            job_id=delivery_job_id(delivery_id),
            retry=delivery_retry(),
            result_ttl=0,
            failure_ttl=86400,
        )


def run_notify(*, run_id: uuid.UUID | str) -> list[int]:
    """Create the deliveries a finished run calls for (once per rule, however often
    this is called) and enqueue them. Returns the ids of the new ones."""
    run = Run.objects.select_related("service__project").filter(pk=run_id).first()
    if run is None:
        return []
    kind = run_notify_kind(run=run)
    if kind is None:
        run_notify_done(run_id=run.pk)
        return []
    created: list[int] = []
    for rule in rules_for_run(run=run, kind=kind):
        try:
            with transaction.atomic():
                delivery, new = NotificationDelivery.objects.get_or_create(
                    rule=rule, run=run, defaults={"channel": rule.channel, "kind": kind}
                )
        except IntegrityError:
            # Another job made it at the same moment.
            continue
        if new:
            created.append(delivery.pk)
    # The deliveries exist now; a lost enqueue of them is the deliveries reconciler's job.
    run_notify_done(run_id=run.pk)
    deliveries_enqueue_now(delivery_ids=created)
    return created


def delivery_test(*, rule: NotificationRule) -> NotificationDelivery:
    """A test notification of a rule (no run), enqueued on commit."""
    delivery = NotificationDelivery.objects.create(rule=rule, run=None, channel=rule.channel, kind=Kind.TEST)
    transaction.on_commit(lambda: deliveries_enqueue_now(delivery_ids=[delivery.pk]))
    return delivery


def _send_webhook(rule: NotificationRule, body: bytes, delivery_id: int) -> int:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "k8x-notify",
        "X-K8X-Delivery": str(delivery_id),
        SIGNATURE_HEADER: payload_signature(secret=rule.reveal_secret(), body=body),
    }
    timeout = float(settings.K8X_NOTIFY_TIMEOUT_SECONDS)
    try:
        with requests.post(
            rule.url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
        ) as resp:
            if 200 <= resp.status_code < 300:
                return resp.status_code
            # A bounded look at the answer, for the error shown in the console.
            head = next(resp.iter_content(200), b"").decode(errors="replace")
            raise DeliveryError(f"HTTP {resp.status_code} from the webhook: {head}".strip(), resp.status_code)
    except requests.RequestException as exc:
        raise DeliveryError(f"webhook not reached: {exc}") from exc


def _send_email(rule: NotificationRule, subject: str, text: str) -> None:
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, list(rule.emails), fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"e-mail not sent: {exc}") from exc


def delivery_attempt(*, delivery_id: int, final: bool) -> bool:
    """Try to send a delivery once, counting the attempt. True when it is sent (now
    or before). A failed attempt leaves it ``pending``, or ``failed`` when ``final``."""
    delivery = (
        NotificationDelivery.objects.select_related("rule__project", "rule__service", "run__service__project")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return True  # deleted with its rule or run: nothing to send
    if delivery.status == DeliveryStatus.SENT:
        return True
    NotificationDelivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    rule = delivery.rule
    payload = payload_build(rule=rule, run=delivery.run, kind=delivery.kind)
    code: int | None = None
    try:
        if delivery.channel == NotifyChannel.WEBHOOK:
            code = _send_webhook(rule, payload_body(rule=rule, payload=payload), delivery.pk)
        else:
            subject, text = payload_email(payload=payload)
            _send_email(rule, subject, text)
    except DeliveryError as exc:
        NotificationDelivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.SENT).update(
            status=DeliveryStatus.FAILED if final else DeliveryStatus.PENDING,
            last_error=str(exc)[:_ERROR_CHARS],
            response_code=exc.code,
            updated_at=timezone.now(),
        )
        log.warning("notification %s (rule %s): %s%s", delivery.pk, rule.pk, exc, "" if final else "; will retry")
        return False
    now = timezone.now()
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENT, last_error="", response_code=code, sent_at=now, updated_at=now
    )
    return True
