"""Pure parts of notifications: the backoff schedule, rule input checks, URL display."""

from __future__ import annotations

from typing import Any

import pytest

from k8x_core.notify.deliveries import delivery_retry
from k8x_core.notify.rules import RuleInvalid, rule_emails_parse, rule_url_display, rule_url_validate


def test_backoff_doubles(settings: Any) -> None:
    settings.K8X_NOTIFY_RETRIES = 4
    settings.K8X_NOTIFY_BACKOFF_SECONDS = 10
    retry = delivery_retry()
    assert retry is not None
    assert (retry.max, retry.intervals) == (4, [10, 20, 40, 80])
    settings.K8X_NOTIFY_RETRIES = 0
    assert delivery_retry() is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://x.test/", "the webhook URL must be http:// or https:// with a host"),
        ("https:///path", "the webhook URL must be http:// or https:// with a host"),
        ("https://user:pw@x.test/", "the webhook URL must not carry credentials (the body is signed instead)"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(RuleInvalid, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        rule_url_validate(url=url)
    assert err.value.field == "url"


def test_emails() -> None:
    assert rule_emails_parse(text="a@x.test, b@x.test\nc@x.test") == ["a@x.test", "b@x.test", "c@x.test"]
    with pytest.raises(RuleInvalid, match="give at least one e-mail address"):
        rule_emails_parse(text=" , ")
    with pytest.raises(RuleInvalid, match="'nope' is not an e-mail address"):
        rule_emails_parse(text="a@x.test nope")
    with pytest.raises(RuleInvalid, match="at most 20 e-mail addresses"):
        rule_emails_parse(text=" ".join(f"u{i}@x.test" for i in range(21)))


def test_url_display_hides_the_path() -> None:
    assert rule_url_display(url="https://hooks.slack.test/services/T1/B2/secret") == "https://hooks.slack.test/…"
    assert rule_url_display(url="http://127.0.0.1:8080/x?token=1") == "http://127.0.0.1:8080/…"
