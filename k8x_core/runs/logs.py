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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Sum

from k8x_core import kube
from k8x_core.models import TERMINAL_STATUSES, Run, RunLog
from k8x_core.runs import jobspec
from k8x_core.runs.loglines import LogLineSplitter

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
    """Append followed lines to a run's log while the run is not over: one INSERT
    statement, nothing stored is read or rewritten. False when the run is over (or
    gone)."""
    live = ~Q(status__in=TERMINAL_STATUSES)
    if text:
        # One statement (the flush's whole cost is one round trip and one commit). It
        # locks the run row as the terminal update does (FOR NO KEY UPDATE): the final
        # log's transaction either waits for this append and then replaces it, or has
        # committed, and this append sees the run over and inserts nothing.
        lock = " FOR NO KEY UPDATE" if connection.features.has_select_for_no_key_update else ""
        statuses = ", ".join(["%s"] * len(TERMINAL_STATUSES))
        runlog, run = connection.ops.quote_name(RunLog._meta.db_table), connection.ops.quote_name(Run._meta.db_table)
        pk = Run._meta.pk.get_db_prep_value(uuid.UUID(str(run_id)), connection)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {runlog} (run_id, text, bytes) "  # noqa: S608 (our own table names)
                f"SELECT id, %s, %s FROM {run} WHERE id = %s AND status NOT IN ({statuses}){lock}",
                [text, len(text.encode()), pk, *[str(s) for s in TERMINAL_STATUSES]],
            )
            if cursor.rowcount != 1:
                return False
    if truncated:
        return Run.objects.filter(live, pk=run_id).update(log_truncated=True) == 1
    return True


def run_log_store(*, run_id: uuid.UUID | str, lines: Sequence[str]) -> None:
    """Replace a run's stored log by ``lines`` (the final log; each stored with its
    newline). Call it in the transaction that sets the run's terminal status and
    ``log_truncated``. The text is built chunk by chunk, never whole."""
    RunLog.objects.filter(run_id=run_id).delete()
    group: list[str] = []
    chars = 0
    for line in lines:
        group.append(line)
        chars += len(line) + 1
        if chars >= CHUNK_CHARS:
            _chunk_insert(run_id, group)
            group, chars = [], 0
    _chunk_insert(run_id, group)


def _chunk_insert(run_id: uuid.UUID | str, lines: list[str]) -> None:
    if lines:
        text = "".join(line + "\n" for line in lines)
        RunLog.objects.create(run_id=run_id, text=text, bytes=len(text.encode()))


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


def _line_bytes(line: str) -> int:
    # With its newline; no copy for the usual ASCII line.
    return (len(line) if line.isascii() else len(line.encode())) + 1


@dataclass
class CollectedLog:
    """A run's log read from its pods: lines (no newlines) within the cap, their
    stored size, whether some pod's log could not be read (e.g. the pod is gone)
    and whether the cap cut it."""

    lines: list[str] = field(default_factory=list)
    size: int = 0
    missing: bool = False
    truncated: bool = False

    def add(self, line: str) -> bool:
        """Keep a line if the cap has room for it; False (and truncated) if not."""
        n = _line_bytes(line)
        if self.truncated or self.size + n > log_cap():
            self.truncated = True
            return False
        self.lines.append(line)
        self.size += n
        return True


def run_log_collect(*, namespace: str, pods: list[dict[str, Any]]) -> CollectedLog:
    """The log of every attempt (pod) and container, timestamped, in order, lines cut
    at K8X_LOG_LINE_MAX_BYTES, capped at K8X_LOG_CAP_BYTES. Each read is streamed
    into the splitter and asks the API for no more than the cap has room for
    (``limitBytes``): the raw log is never held whole."""
    pods = sorted(pods, key=pod_sort_key)
    out = CollectedLog()
    for i, pod in enumerate(pods, start=1):
        name = str((pod.get("metadata") or {}).get("name") or "")
        names = container_names(pod)
        if len(pods) > 1:
            created = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
            out.add(f"{created} --- attempt {i}: pod {name} ---")
        for cname in names:
            room = log_cap() - out.size
            if room <= 0 or out.truncated:
                out.truncated = True
                return out
            splitter = LogLineSplitter(line_max=log_line_max(), container=cname if len(names) > 1 else None)
            read = 0
            try:
                for chunk in kube.pod_log_chunks(
                    namespace=namespace, name=name, container=cname, limit_bytes=room, follow=False, read_timeout=30
                ):
                    read += len(chunk)
                    for line in splitter.feed(chunk):
                        out.add(line)
                    if out.truncated:
                        break
            except (kube.KubeNotFound, kube.KubeInvalid):
                # Gone, or a container that never started ("waiting to start").
                out.missing = True
                continue
            if out.truncated:
                return out
            for line in splitter.finish(cut=read >= room):
                out.add(line)
            if read >= room:
                out.truncated = True
    return out


def run_log_final(
    *, run_id: uuid.UUID | str, namespace: str, pods: list[dict[str, Any]] | None = None
) -> CollectedLog | None:
    """The full log of the run's pods (all attempts), capped, with its truncation flag;
    None when the stored log should stay (the log followed live is not shorter)."""
    if pods is None:
        pods, _ = kube.pod_list(namespace=namespace, label_selector=f"{jobspec.LABEL_RUN_ID}={run_id}")
    final = run_log_collect(namespace=namespace, pods=pods)
    for _ in range(3):
        # Right after a container ends its log can read empty for a moment.
        if final.lines or not pods:
            break
        time.sleep(0.3)
        final = run_log_collect(namespace=namespace, pods=pods)
    if not final.lines and pods:
        log.warning(
            "run %s: empty log from pods %s",
            run_id,
            [((p.get("metadata") or {}).get("name"), (p.get("status") or {}).get("phase")) for p in pods],
        )
    # Keep what was followed live unless the pods now give more: a pod is gone, or the
    # kubelet rotated a container's log (over 10 MiB by default) and a read after the
    # end starts at the last rotation. Of two logs cut at the same cap, the followed
    # one is the one that starts at the beginning.
    stored = run_log_size(run_id)
    if stored and stored >= final.size:
        return None
    return final


def run_log_store_final(*, run_id: uuid.UUID | str, namespace: str, pods: list[dict[str, Any]] | None = None) -> None:
    """Store ``run_log_final`` as the run's log (for a run already ended, e.g. cancelled)."""
    final = run_log_final(run_id=run_id, namespace=namespace, pods=pods)
    if final is not None:
        with transaction.atomic():
            Run.objects.filter(pk=run_id).update(log_truncated=final.truncated)
            run_log_store(run_id=run_id, lines=final.lines)
