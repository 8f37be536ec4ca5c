"""Notification fixtures: a project with a service, a webhook receiver, an SMTP
sink, and settings that send e-mail through the sink with short backoffs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from k8x_core.models import Project, Service
from tests.notify_support import Receiver, SmtpSink


@pytest.fixture
def notify_settings(settings: Any, queue_name: str) -> Any:
    settings.K8X_NOTIFY_RETRIES = 4
    settings.K8X_NOTIFY_BACKOFF_SECONDS = 1
    settings.K8X_NOTIFY_TIMEOUT_SECONDS = 5.0
    settings.K8X_CONSOLE_URL = "http://console.test:8000"
    return settings


@pytest.fixture
def smtp(notify_settings: Any) -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    # Django's test runner swaps in the in-memory backend; these tests talk SMTP.
    notify_settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    notify_settings.EMAIL_HOST = "127.0.0.1"
    notify_settings.EMAIL_PORT = sink.port
    notify_settings.EMAIL_USE_TLS = False
    notify_settings.DEFAULT_FROM_EMAIL = "k8x@k8x.test"
    yield sink
    sink.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def service(transactional_db: None, notify_settings: Any) -> Service:
    project = Project.objects.create(slug=f"n{uuid.uuid4().hex[:8]}")
    return Service.objects.create(project=project, name="billing", image="busybox")
