"""Small presentation helpers for the console templates."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.http import QueryDict
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def status_badge(status: str, label: str = "") -> SafeString:
    return format_html('<span class="badge s-{}">{}</span>', status, label or status.replace("_", " "))


@register.simple_tag
def outcome_badge(outcome: str) -> SafeString:
    return format_html('<span class="badge o-{}">{}</span>', outcome, outcome)


@register.filter
def duration(value: timedelta | float | int | None) -> str:
    """A short human duration: 850 ms, 12.3 s, 4 m 05 s, 2 h 03 m."""
    if value is None or value == "":
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


@register.filter
def run_duration(run: Any) -> str:
    start: datetime | None = run.started_at
    end: datetime | None = run.finished_at
    if start is None:
        return "—"
    if end is None:
        return duration(timezone.now() - start) + " so far"
    return duration(end - start)


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def short_id(value: Any) -> str:
    return str(value)[:8]


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: Any) -> str:
    """The current query string with some parameters replaced (None or "" removes)."""
    query: QueryDict = context["request"].GET.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value not in (None, ""):
            query[key] = str(value)
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.filter
def get_item(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def status_label(status: str) -> str:
    return status.replace("_", " ")


@register.filter
def shell_join(words: list[str] | None) -> str:
    """Argument lists shown the way a shell would need them typed."""
    return shlex.join(words or [])
