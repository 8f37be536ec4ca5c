"""k8x_apikey, k8x_send and k8x_scheduler from the shell."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from k8x_core.events.apikeys import apikey_authenticate
from k8x_core.models import Service
from k8x_core.projects import project_ensure
from tests.kafka_support import topic_read

pytestmark = pytest.mark.django_db


def test_apikey_prints_a_working_key_once():
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    out = io.StringIO()
    call_command("k8x_apikey", "--project", project.slug, "--name", "ci", stdout=out, stderr=io.StringIO())
    raw = out.getvalue().strip()
    key = apikey_authenticate(raw=raw)
    assert key is not None
    assert key.project == project
    assert raw not in key.key_hash


def test_apikey_role():
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    out, err = io.StringIO(), io.StringIO()
    call_command("k8x_apikey", "--project", project.slug, "--name", "ops", "--role", "admin", stdout=out, stderr=err)
    key = apikey_authenticate(raw=out.getvalue().strip())
    assert key is not None and key.role == "admin"
    assert "(admin)" in err.getvalue()
    out = io.StringIO()
    call_command("k8x_apikey", "--project", project.slug, "--name", "ci", stdout=out, stderr=io.StringIO())
    key = apikey_authenticate(raw=out.getvalue().strip())
    assert key is not None and key.role == "user"
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("k8x_apikey", "--project", project.slug, "--name", "x", "--role", "root")


def test_apikey_unknown_project():
    with pytest.raises(CommandError, match="no project 'nope'"):
        call_command("k8x_apikey", "--project", "nope", "--name", "ci")


@pytest.mark.kafka
def test_send_with_data_file(topic, tmp_path):
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"amount": 5}))
    out = io.StringIO()
    call_command(
        "k8x_send",
        "--type",
        "com.acme.cli",
        "--source",
        "/shell",
        "--subject",
        "s1",
        "--data",
        f"@{data}",
        "--project",
        project.slug,
        stdout=out,
    )
    printed = json.loads(out.getvalue())
    [record] = topic_read(topic, 1)
    event = record.sdk_event()
    assert event.get_id() == printed["id"]
    assert event.get_extension("correlationid") == printed["correlation_id"]
    assert event.get_extension("k8xproject") == project.slug
    assert event.get_data() == {"amount": 5}
    assert record.key == b"s1"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data", "{nope"], "not valid JSON"),
        (["--data", "@/no/such/file"], "cannot read"),
        (["--project", "missing"], "no project"),
        (["--id", ""], None),
    ],
)
def test_send_refuses_bad_input(args, words, settings):
    settings.K8X_EVENTS_TOPIC = f"test.cli.{uuid.uuid4().hex}"
    if words is None:
        # An empty --id falls back to a new id: accepted, not an error.
        out = io.StringIO()
        call_command("k8x_send", "--type", "t", "--source", "s", *args, stdout=out)
        assert json.loads(out.getvalue())["id"]
        return
    with pytest.raises(CommandError, match=words):
        call_command("k8x_send", "--type", "t", "--source", "s", *args)


def test_send_invalid_type():
    with pytest.raises(CommandError, match="'type'"):
        call_command("k8x_send", "--type", "", "--source", "s")


@pytest.mark.kafka
def test_scheduler_once(topic):
    project = project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]
    service = Service.objects.create(project=project, name="every-minute", image="busybox", schedule="* * * * *")
    Service.objects.filter(pk=service.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    call_command("k8x_scheduler", "--once")
    [record] = topic_read(topic, 1)
    assert record.sdk_event().get_extension("k8xservice") == "every-minute"
