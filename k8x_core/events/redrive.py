"""Dead letters: a rejected event, edited by its project's owner, sent again through normal ingestion."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from k8x_core.events import ce, ingest
from k8x_core.models import Event, EventOutcome


def rejected_event_draft(*, event: Event) -> dict[str, Any]:
    """The rejected message as a structured CloudEvent to start editing from.

    The hub keeps a preview of what it could not accept: the Kafka headers
    (``ce_*`` attributes in binary mode) and the value (the data, or in
    structured mode the whole event). Reserved ``k8x*`` extensions are dropped:
    ingestion sets them again from the sender."""
    preview = (event.payload or {}).get("rejected_message") or {}
    headers: dict[str, str] = dict(preview.get("headers") or {})
    value = str(preview.get("value") or "")
    try:
        parsed: Any = json.loads(value) if value else None
    except ValueError:
        parsed = None
    content_type = headers.get("content-type", headers.get("ce_datacontenttype", ""))
    if isinstance(parsed, dict) and "specversion" in parsed:
        draft: dict[str, Any] = dict(parsed)
    else:
        draft = {k[3:]: v for k, v in headers.items() if k.lower().startswith("ce_")}
        if parsed is not None:
            draft["data"] = parsed
        elif value:
            draft["data"] = value
        if content_type and "datacontenttype" not in draft:
            draft["datacontenttype"] = content_type
    draft.setdefault("specversion", ce.SPECVERSION)
    for name, fallback in (("id", event.ce_id), ("source", event.source), ("type", event.type)):
        if not draft.get(name) and fallback:
            draft[name] = fallback
    return {k: v for k, v in draft.items() if not k.startswith(ce.RESERVED_EXTENSION_PREFIX)}


def event_redrive(
    *, event: Event, edited: Mapping[str, Any], user: AbstractBaseUser, keep_id: bool = False
) -> ingest.Accepted:
    """Send the edited version of a rejected event through ``event_accept`` as its
    project (the user must be a member; the console asks for the owner role).
    A new ``id`` unless ``keep_id``. Raises IngestRefused naming the field."""
    if event.outcome != EventOutcome.REJECTED:
        raise ValueError("only a rejected event can be re-driven; replay the others")
    if event.project is None:
        raise ValueError("this rejected event belongs to no project; send it again from its producer")
    attrs = dict(edited)
    if not keep_id or not attrs.get("id"):
        attrs["id"] = str(uuid.uuid4())
    try:
        normalized = ce.ce_normalize(attrs)
    except ce.CloudEventInvalid as exc:
        raise ingest.IngestRefused(400, exc.message, field=exc.field) from exc
    sender = ingest.sender_from_user(user=user, project_slug=event.project.slug)
    return ingest.event_accept(events=[normalized], sender=sender, endpoint="redrive")[0]
