"""A run's stored log: read from every attempt's pods, capped at K8X_LOG_CAP_BYTES,
and kept after the pods are gone.

The log is stored as RunLog chunks, read in ``id`` order (``run_log_chunks``,
``run_log_text``). While the run lives the watcher appends one chunk per flush
(``run_log_append``: an INSERT, so a flush costs what it adds, not what is
stored). When it ends the final log replaces the chunks (``run_log_store``), in
the transaction that sets the terminal status. Loading a Run never loads its log.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from k8x_core import kube
from k8x_core.models import TERMINAL_STATUSES, Run, RunLog
from k8x_core.runs import jobspec
from k8x_core.runs.loglines import log_lines_split

log = logging.getLogger(__name__)


def pod_sort_key(pod: dict[str, Any]) -> tuple[str, str]:
    """Attempts in the order they were created."""
    meta = pod.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def log_cap() -> int:
    return int(settings.K8X_LOG_CAP_BYTES)


def log_line_max() -> int:
    return int(settings.K8X_LOG_LINE_MAX_BYTES)


# Characters per stored chunk of a final log (chunks only bound the size of one row).
CHUNK_CHARS = 256 * 1024


# --- the stored log ---------------------------------------------------------------------


def run_log_chunks(run_id: uuid.UUID | str) -> Iterator[str]:
    """The stored log of a run, chunk by chunk, in order (one query)."""
    rows = RunLog.objects.filter(run_id=run_id).order_by("id").values_list("text", flat=True)
    yield from rows.iterator(chunk_size=16)


def run_log_text(run_id: uuid.UUID | str) -> str:
    """The stored log of a run (what the API, the download, the run page and the
    websocket's snapshot show)."""
    return "".join(run_log_chunks(run_id))


def run_log_size(run_id: uuid.UUID | str) -> int:
    """UTF-8 bytes stored for a run (the cap applies to this sum)."""
    return int(RunLog.objects.filter(run_id=run_id).aggregate(n=Sum("bytes"))["n"] or 0)


def run_log_append(*, run_id: uuid.UUID | str, text: str, truncated: bool = False) -> bool:
    """Append followed lines to a run's log while the run is not over: one INSERT,
    nothing stored is read or rewritten. False when the run is over (or gone)."""
    with transaction.atomic():
        # The run row is locked (FOR NO KEY UPDATE, as the terminal update takes it):
        # the final log's transaction either waits for this append and then replaces
        # it, or has committed and this append sees the run over and adds nothing.
        live = (
            Run.objects.select_for_update(no_key=True)
            .filter(pk=run_id)
            .exclude(status__in=TERMINAL_STATUSES)
            .values_list("pk", flat=True)
        )
        if live.first() is None:
            return False
        if text:
            RunLog.objects.create(run_id=run_id, text=text, bytes=len(text.encode()))
        if truncated:
            Run.objects.filter(pk=run_id).update(log_truncated=True)
    return True


def run_log_store(*, run_id: uuid.UUID | str, text: str) -> None:
    """Replace a run's stored log by ``text`` (the final log). Call it in the
    transaction that sets the run's terminal status and ``log_truncated``."""
    RunLog.objects.filter(run_id=run_id).delete()
    RunLog.objects.bulk_create(
        [
            RunLog(run_id=run_id, text=part, bytes=len(part.encode()))
            for part in (text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS))
        ]
    )


# --- reading the pods' logs -------------------------------------------------------------


def log_capped(text: str, cap: int) -> tuple[str, bool]:
    data = text.encode()
    if len(data) <= cap:
        return text, False
    cut = data[:cap].decode("utf-8", "ignore")
    # Never keep half a line.
    if "\n" in cut:
        cut = cut[: cut.rindex("\n") + 1]
    return cut, True


def container_names(pod: dict[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    return [str(c.get("name")) for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or [])]


def run_log_collect(*, namespace: str, pods: list[dict[str, Any]]) -> tuple[str, bool, bool]:
    """The log of every attempt (pod) and container, timestamped, in order, lines cut
    at K8X_LOG_LINE_MAX_BYTES. Each read asks the API for no more than the cap has
    room for (``limitBytes``). Flags: some pod's log could not be read (e.g. the pod
    is gone); some read stopped at the cap."""
    pods = sorted(pods, key=pod_sort_key)
    parts: list[str] = []
    missing = truncated = False
    room = log_cap()
    for i, pod in enumerate(pods, start=1):
        name = str((pod.get("metadata") or {}).get("name") or "")
        names = container_names(pod)
        if len(pods) > 1:
            created = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
            parts.append(f"{created} --- attempt {i}: pod {name} ---\n")
        for cname in names:
            if room <= 0:
                truncated = True
                break
            try:
                raw = kube.pod_log_read(namespace=namespace, name=name, container=cname, limit_bytes=room).encode()
            except (kube.KubeNotFound, kube.KubeInvalid):
                # Gone, or a container that never started ("waiting to start").
                missing = True
                continue
            cut = len(raw) >= room
            truncated = truncated or cut
            room -= len(raw)
            lines = log_lines_split(raw, line_max=log_line_max(), container=cname if len(names) > 1 else None, cut=cut)
            parts.append("".join(line + "\n" for line in lines))
    return "".join(parts), missing, truncated


def run_log_final(
    *, run_id: uuid.UUID | str, namespace: str, pods: list[dict[str, Any]] | None = None
) -> tuple[str, bool] | None:
    """The full log of the run's pods (all attempts), capped, with its truncation flag;
    None when the stored log should stay (pods' logs no longer all readable and the
    log followed live is longer)."""
    if pods is None:
        pods, _ = kube.pod_list(namespace=namespace, label_selector=f"{jobspec.LABEL_RUN_ID}={run_id}")
    text, missing, cut = run_log_collect(namespace=namespace, pods=pods)
    for _ in range(3):
        # Right after a container ends its log can read empty for a moment.
        if text or not pods:
            break
        time.sleep(0.3)
        text, missing, cut = run_log_collect(namespace=namespace, pods=pods)
    if not text and pods:
        log.warning(
            "run %s: empty log from pods %s",
            run_id,
            [((p.get("metadata") or {}).get("name"), (p.get("status") or {}).get("phase")) for p in pods],
        )
    capped, truncated = log_capped(text, log_cap())
    if missing and run_log_size(run_id) >= len(capped.encode()):
        return None
    return capped, truncated or cut


def run_log_store_final(*, run_id: uuid.UUID | str, namespace: str, pods: list[dict[str, Any]] | None = None) -> None:
    """Store ``run_log_final`` as the run's log (for a run already ended, e.g. cancelled)."""
    final = run_log_final(run_id=run_id, namespace=namespace, pods=pods)
    if final is not None:
        with transaction.atomic():
            Run.objects.filter(pk=run_id).update(log_truncated=final[1])
            run_log_store(run_id=run_id, text=final[0])
