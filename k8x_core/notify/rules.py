"""Notification rules: who is told about which runs, validated on save."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import QuerySet

from k8x_core.models import NotificationRule, NotifyChannel, Project, Run, RunStatus, Service
from k8x_core.runs.finish import rules_wanting

MAX_EMAILS = 20


class RuleInvalid(ValueError):
    """A rule that cannot be saved; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Kind:
    """What a notification tells."""

    FAILED = "failed"
    TIMED_OUT = "timed_out"
    RECOVERED = "recovered"
    TEST = "test"


_KIND_FLAG = {Kind.FAILED: "on_failed", Kind.TIMED_OUT: "on_timed_out", Kind.RECOVERED: "on_recovered"}


def rule_url_validate(*, url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RuleInvalid("url", "the webhook URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise RuleInvalid("url", "the webhook URL must not carry credentials (the body is signed instead)")
    return url


def rule_emails_parse(*, text: str) -> list[str]:
    """Addresses separated by commas, spaces or new lines."""
    emails = [e for e in text.replace(",", " ").split() if e]
    if not emails:
        raise RuleInvalid("emails", "give at least one e-mail address")
    if len(emails) > MAX_EMAILS:
        raise RuleInvalid("emails", f"at most {MAX_EMAILS} e-mail addresses")
    for email in emails:
        try:
            validate_email(email)
        except ValidationError:
            raise RuleInvalid("emails", f"{email!r} is not an e-mail address") from None
    return emails


def rule_save(
    *,
    project: Project,
    name: str,
    channel: str,
    service: Service | None = None,
    on_failed: bool = True,
    on_timed_out: bool = True,
    on_recovered: bool = False,
    url: str = "",
    slack: bool = False,
    secret: str = "",
    emails: Sequence[str] | str = (),
    active: bool = True,
    user: AbstractBaseUser | None = None,
    rule: NotificationRule | None = None,
) -> tuple[NotificationRule, str | None]:
    """Create a rule (``rule`` None) or change one. A webhook rule without a secret
    gets a generated one, returned (to be shown once); otherwise None. An empty
    ``url`` or ``secret`` on a change keeps the rule's (pages never show them)."""
    name = name.strip()
    if not name:
        raise RuleInvalid("name", "give the rule a name")
    if service is not None and service.project_id != project.pk:
        raise RuleInvalid("service", f"service {service.name} is not in project {project.slug}")
    if not (on_failed or on_timed_out or on_recovered):
        raise RuleInvalid("on_failed", "choose at least one of failed, timed out, succeeded after failure")
    if rule is None:
        rule = NotificationRule(
            project=project, created_by=user if user is not None and user.is_authenticated else None
        )  # type: ignore[misc]
    new_secret: str | None = None
    if channel == NotifyChannel.WEBHOOK:
        rule.url = rule_url_validate(url=url or rule.url)
        rule.slack = slack
        rule.emails = []
        if secret:
            rule.set_secret(secret)
        elif not rule.secret_ciphertext:
            new_secret = secrets.token_urlsafe(32)
            rule.set_secret(new_secret)
    elif channel == NotifyChannel.EMAIL:
        rule.emails = (
            rule_emails_parse(text=emails) if isinstance(emails, str) else rule_emails_parse(text=" ".join(emails))
        )
        rule.url = ""
        rule.slack = False
        rule.secret_ciphertext = ""
    else:
        raise RuleInvalid("channel", f"channel must be one of {', '.join(NotifyChannel.values)}")
    if NotificationRule.objects.filter(project=project, name=name).exclude(pk=rule.pk).exists():
        raise RuleInvalid("name", f"project {project.slug} has a rule named {name} already")
    rule.name = name
    rule.service = service
    rule.channel = channel
    rule.on_failed, rule.on_timed_out, rule.on_recovered = on_failed, on_timed_out, on_recovered
    rule.active = active
    rule.save()
    return rule, new_secret


def run_notify_kind(*, run: Run) -> str | None:
    """What the end of this run tells, or None: failed, timed out, or succeeded
    when the service's previous finished run (succeeded, failed or timed out;
    cancelled runs do not count) failed or timed out."""
    if run.status == RunStatus.FAILED:
        return Kind.FAILED
    if run.status == RunStatus.TIMED_OUT:
        return Kind.TIMED_OUT
    if run.status != RunStatus.SUCCEEDED or run.finished_at is None:
        return None
    previous = (
        Run.objects.filter(
            service_id=run.service_id,
            status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT],
            finished_at__lte=run.finished_at,
        )
        .exclude(pk=run.pk)
        .order_by("-finished_at", "-created_at")
        .values_list("status", flat=True)
        .first()
    )
    return Kind.RECOVERED if previous in (RunStatus.FAILED, RunStatus.TIMED_OUT) else None


def rules_for_run(*, run: Run, kind: str) -> QuerySet[NotificationRule]:
    """The active rules of the run's project (all services, or the run's) that want ``kind``."""
    return rules_wanting(project_id=run.service.project_id, service_id=run.service_id, flag=_KIND_FLAG[kind]).order_by(
        "pk"
    )


def rule_url_display(*, url: str) -> str:
    """The webhook URL as pages show it: scheme and host only (the path of a Slack
    or similar URL is its credential)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…" if parts.hostname else ""
