"""Helpers shared by the console views."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.dateparse import parse_datetime

PAGE_SIZE = 50


def request_user(request: HttpRequest) -> User:
    """The logged-in user (every console view is behind login_required)."""
    user = request.user
    assert isinstance(user, User)
    return user


@dataclass
class Page:
    """One page of a keyset-paginated list, newest first.

    Keyset, not OFFSET/COUNT: a page of 100k runs costs the same as the first."""

    items: list[Any]
    newer: str | None
    older: str | None


def _cursor(created_at: datetime, pk: Any) -> str:
    return f"{created_at.isoformat()}~{pk}"


def _parse_cursor(raw: str, pk_type: type) -> tuple[datetime, Any] | None:
    stamp, _, pk = raw.partition("~")
    when = parse_datetime(stamp.replace(" ", "+"))
    if when is None or not pk:
        return None
    try:
        return when, (uuid.UUID(pk) if pk_type is uuid.UUID else pk_type(pk))
    except ValueError:
        return None


def keyset_page(
    request: HttpRequest, qs: QuerySet[Any], *, time_field: str, pk_type: type, size: int = PAGE_SIZE
) -> Page:
    """Newest first; ``?older=<cursor>`` and ``?newer=<cursor>`` move a page back and forth."""
    older = _parse_cursor(request.GET.get("older", ""), pk_type)
    newer = _parse_cursor(request.GET.get("newer", ""), pk_type)
    if newer is not None and older is None:
        when, pk = newer
        chunk = list(
            qs.filter(
                # The redundant bound lets the index on the time column start the scan at the cursor.
                Q(**{f"{time_field}__gte": when}),
                Q(**{f"{time_field}__gt": when}) | Q(**{time_field: when, "pk__gt": pk}),
            ).order_by(time_field, "pk")[: size + 1]
        )
        has_newer = len(chunk) > size
        items = list(reversed(chunk[:size]))
        has_older = True
    else:
        if older is not None:
            when, pk = older
            qs = qs.filter(
                Q(**{f"{time_field}__lte": when}),
                Q(**{f"{time_field}__lt": when}) | Q(**{time_field: when, "pk__lt": pk}),
            )
        chunk = list(qs.order_by(f"-{time_field}", "-pk")[: size + 1])
        has_older = len(chunk) > size
        items = chunk[:size]
        has_newer = older is not None
    first, last = (items[0], items[-1]) if items else (None, None)
    return Page(
        items=items,
        newer=_cursor(getattr(first, time_field), first.pk) if first is not None and has_newer else None,
        older=_cursor(getattr(last, time_field), last.pk) if last is not None and has_older else None,
    )
