"""Template tags for git deployment on other pages (the service page)."""

from __future__ import annotations

from typing import Any

from django import template

from console.views.repos import change_fields
from k8x_core.catalog.servicedirs import service_change_in, service_sync_history
from k8x_core.models import Service

register = template.Library()


@register.simple_tag
def service_deployments(service: Service, limit: int = 10) -> list[dict[str, Any]]:
    """The syncs that changed this service, each with its field diff, newest first."""
    rows = []
    for record in service_sync_history(service=service, limit=limit):
        change = service_change_in(record=record, service_name=service.name) or {}
        rows.append({"record": record, "action": change.get("action", ""), "fields": change_fields(change)})
    return rows
