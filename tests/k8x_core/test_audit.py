"""audit_record: the diff, redaction, and a secret set from the command line."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from k8x_core.audit import REDACTED, audit_diff, audit_record
from k8x_core.models import AuditEntry, Project
from k8x_core.runs.configs import secret_set

pytestmark = pytest.mark.django_db


def _rows(project: Project) -> list[tuple[str, str, str, str, str]]:
    return list(
        AuditEntry.objects.filter(project=project)
        .order_by("pk")
        .values_list("actor_kind", "actor_name", "action", "kind", "object_name")
    )


def test_diff_keeps_changed_fields_and_redacts_secret_material() -> None:
    assert audit_diff(kind="config", before={"value": "a", "key": "K"}, after={"value": "b", "key": "K"}) == {
        "value": {"old": "a", "new": "b"}
    }
    assert audit_diff(kind="secret", before=None, after={"key": "K", "value": "plain"}) == {
        "key": {"old": None, "new": "K"},
        "value": {"old": None, "new": REDACTED},
    }
    assert audit_diff(kind="webhook", before={"secret_ciphertext": "x"}, after={"secret_ciphertext": "y"}) == {
        "secret_ciphertext": {"old": REDACTED, "new": REDACTED}
    }
    with pytest.raises(ValueError, match="audit action must be one of"):
        audit_record(project=None, actor=None, action="rename", kind="x", name="y", before=None, after=None)


def test_an_update_that_changes_nothing_records_nothing() -> None:
    project = Project.objects.create(slug="audit-noop")
    assert (
        audit_record(
            project=project, actor=None, action="update", kind="config", name="K", before={"v": 1}, after={"v": 1}
        )
        is None
    )
    assert not AuditEntry.objects.exists()


def test_a_secret_set_from_the_command_line_records_its_name_and_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project.objects.create(slug="audit-cli")
    monkeypatch.setattr("sys.stdin", StringIO("pw-never-in-the-log\n"))
    call_command("k8x_secret", "set", "--project", "audit-cli", "DB_PASSWORD", stdout=StringIO())
    secret_set(key="DB_PASSWORD", value="pw-2-never-in-the-log", project=project)
    assert _rows(project) == [
        ("system", "k8x_secret", "create", "secret", "DB_PASSWORD"),
        ("system", "system", "update", "secret", "DB_PASSWORD"),
    ]
    dumped = json.dumps([model_to_dict(e) for e in AuditEntry.objects.all()], default=str)
    assert "pw-never-in-the-log" not in dumped and "pw-2-never-in-the-log" not in dumped
