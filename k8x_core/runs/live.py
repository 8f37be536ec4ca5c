"""Live updates for the console over the channel layer.

Group ``run.<run id hex>`` receives:
- ``{"type": "run.log", "lines": ["<RFC 3339 timestamp> <text>", ...]}``
- ``{"type": "run.status", "status", "exit_code", "reason", "started_at", "finished_at"}``
Group ``project.<project id>`` receives the same ``run.status`` messages plus
``"run_id"`` and ``"service"``, for live lists and badges.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def run_group(run_id: uuid.UUID | str) -> str:
    return f"run.{uuid.UUID(str(run_id)).hex}"


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # a lost channel layer must never fail a run
        log.warning("live update to %s not delivered", group, exc_info=True)


def live_publish_log(*, run_id: uuid.UUID | str, lines: list[str]) -> None:
    if lines:
        _send(run_group(run_id), {"type": "run.log", "lines": lines})


def live_publish_status(*, run_id: uuid.UUID | str, project_id: int, service: str, status: str, **extra: Any) -> None:
    message = {"type": "run.status", "run_id": str(run_id), "service": service, "status": status, **extra}
    _send(run_group(run_id), message)
    _send(project_group(project_id), message)
