"""The live log websocket: /ws/runs/<id>/logs/.

On connect the consumer checks the user may see the run (role ``user`` in its
project; anyone else is refused with close code 4403 before the handshake
completes), joins the run's group (k8x_core.runs.live), and only then reads the log
stored so far and sends it as one ``snapshot``. Live lines that arrive later
and are already part of the snapshot are dropped by timestamp, so the browser
sees every line exactly once: snapshot first, then ``log`` and ``status``
messages as the watcher publishes them.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from k8x_core.models import TERMINAL_STATUSES, Role, Run
from k8x_core.projects import project_allows
from k8x_core.runs.live import run_group

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403


def line_timestamp(line: str) -> str:
    """The RFC 3339 timestamp that starts a log line ("" if none)."""
    head = line.split(" ", 1)[0]
    return head if len(head) >= 20 and head[4:5] == "-" and "T" in head else ""


def _ts_key(stamp: str) -> str:
    # Kubernetes timestamps are UTC with up to 9 fractional digits; pad so
    # "…:05Z" and "…:05.1Z" compare as times, not as strings of different lengths.
    if not stamp:
        return ""
    body = stamp.rstrip("Z")
    if "." in body:
        whole, frac = body.split(".", 1)
    else:
        whole, frac = body, ""
    return f"{whole}.{frac.ljust(9, '0')}"


@database_sync_to_async
def _load_authorised_run(user: Any, run_id: str) -> Run | None:
    try:
        run = Run.objects.select_related("service__project").get(pk=uuid.UUID(run_id))
    except (Run.DoesNotExist, ValueError):
        return None
    if not project_allows(user=user, project=run.service.project, role=Role.USER):
        return None
    return run


@database_sync_to_async
def _load_snapshot(run_id: uuid.UUID) -> dict[str, Any]:
    run = Run.objects.get(pk=run_id)
    return {
        "log": run.log,
        "log_truncated": run.log_truncated,
        "status": {
            "status": run.status,
            "exit_code": run.exit_code,
            "reason": run.reason,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
    }


class RunLogConsumer(AsyncJsonWebsocketConsumer):
    group: str = ""
    seen_until: str = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        run_id = str(self.scope["url_route"]["kwargs"]["run_id"])
        run = await _load_authorised_run(user, run_id) if user is not None and user.is_authenticated else None
        if run is None:
            # Same answer for "no such run" and "not yours": nothing leaks.
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = run_group(run.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = await _load_snapshot(run.pk)
        lines = snapshot["log"].splitlines()
        self.seen_until = _ts_key(line_timestamp(lines[-1])) if lines else ""
        await self.send_json({"type": "snapshot", **snapshot})
        if snapshot["status"]["status"] in TERMINAL_STATUSES:
            await self.close()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The socket is one-way; anything the browser sends is ignored.
        return

    async def run_log(self, event: dict[str, Any]) -> None:
        lines = [str(line) for line in event.get("lines", [])]
        if self.seen_until:
            fresh = [line for line in lines if _ts_key(line_timestamp(line) or "~") > self.seen_until]
            if len(fresh) == len(lines):
                self.seen_until = ""  # past the snapshot: no more overlap is possible
            lines = fresh
        if lines:
            await self.send_json({"type": "log", "lines": lines})

    async def run_status(self, event: dict[str, Any]) -> None:
        message = {k: v for k, v in event.items() if k != "type"}
        await self.send_json({"type": "status", **message})
