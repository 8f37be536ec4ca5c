"""Sources under ``k8x/`` belong to K8X's own producers (the scheduler's
``k8x/scheduler``, webhooks' default ``k8x/webhooks/<slug>``): a client that
could send them could pose as K8X, e.g. pre-empt a project's cron ticks.

- The bridge refuses them from API keys, run tokens and console sessions
  (400 naming ``source``); webhooks may not be configured with one.
- The hub accepts a ``k8x/`` source only on an event carrying ``k8xproject``,
  which only K8X's producers set (the bridge strips client ``k8x*``
  extensions); a third-party Kafka producer's ``k8x/`` event without it is
  rejected. A producer with write access to the topic is trusted
  infrastructure and could forge the extension too: Kafka ACLs guard that.
"""

from __future__ import annotations

from typing import Any

RESERVED_SOURCE_PREFIX = "k8x/"

# Senders that are K8X itself (or an operator on its shell).
TRUSTED_SENDER_KINDS = frozenset({"cli", "scheduler", "webhook"})


def source_reserved_problem(*, source: Any) -> str | None:
    """Why ``source`` may not be used by a client, or None."""
    if isinstance(source, str) and source.strip().lower().startswith(RESERVED_SOURCE_PREFIX):
        return f"source {source!r} is reserved: sources under {RESERVED_SOURCE_PREFIX!r} are K8X's own"
    return None
