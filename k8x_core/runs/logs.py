"""A run's stored log: read from every attempt's pods, capped at K8X_LOG_CAP_BYTES,
and kept after the pods are gone."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.conf import settings

from k8x_core import kube
from k8x_core.models import Run
from k8x_core.runs import jobspec

log = logging.getLogger(__name__)


def pod_sort_key(pod: dict[str, Any]) -> tuple[str, str]:
    """Attempts in the order they were created."""
    meta = pod.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def log_cap() -> int:
    return int(settings.K8X_LOG_CAP_BYTES)


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


def run_log_collect(*, namespace: str, pods: list[dict[str, Any]]) -> tuple[str, bool]:
    """The log of every attempt (pod) and container, timestamped, in order. The flag
    says whether some pod's log could not be read (e.g. the pod is gone)."""
    pods = sorted(pods, key=pod_sort_key)
    parts: list[str] = []
    missing = False
    for i, pod in enumerate(pods, start=1):
        name = str((pod.get("metadata") or {}).get("name") or "")
        names = container_names(pod)
        if len(pods) > 1:
            created = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
            parts.append(f"{created} --- attempt {i}: pod {name} ---\n")
        for cname in names:
            try:
                text = kube.pod_log_read(namespace=namespace, name=name, container=cname)
            except (kube.KubeNotFound, kube.KubeInvalid):
                # Gone, or a container that never started ("waiting to start").
                missing = True
                continue
            if len(names) > 1:
                text = "".join(prefix_line(line, cname) for line in text.splitlines(keepends=True))
            if text and not text.endswith("\n"):
                text += "\n"
            parts.append(text)
    return "".join(parts), missing


def prefix_line(line: str, container: str) -> str:
    ts, sep, rest = line.partition(" ")
    return f"{ts} [{container}] {rest}" if sep else f"[{container}] {line}"


def run_log_final(
    *, run_id: uuid.UUID | str, namespace: str, pods: list[dict[str, Any]] | None = None
) -> tuple[str, bool] | None:
    """The full log of the run's pods (all attempts), capped, with its truncation flag;
    None when the stored log should stay (pods' logs no longer all readable and the
    log followed live is longer)."""
    if pods is None:
        pods, _ = kube.pod_list(namespace=namespace, label_selector=f"{jobspec.LABEL_RUN_ID}={run_id}")
    text, missing = run_log_collect(namespace=namespace, pods=pods)
    for _ in range(3):
        # Right after a container ends its log can read empty for a moment.
        if text or not pods:
            break
        time.sleep(0.3)
        text, missing = run_log_collect(namespace=namespace, pods=pods)
    if not text and pods:
        log.warning(
            "run %s: empty log from pods %s",
            run_id,
            [((p.get("metadata") or {}).get("name"), (p.get("status") or {}).get("phase")) for p in pods],
        )
    capped, truncated = log_capped(text, log_cap())
    if missing:
        current = Run.objects.filter(pk=run_id).values_list("log", flat=True).first() or ""
        if len(current) >= len(capped):
            return None
    return capped, truncated


def run_log_store_final(*, run_id: uuid.UUID | str, namespace: str, pods: list[dict[str, Any]] | None = None) -> None:
    """Store ``run_log_final`` in ``Run.log``."""
    final = run_log_final(run_id=run_id, namespace=namespace, pods=pods)
    if final is not None:
        Run.objects.filter(pk=run_id).update(log=final[0], log_truncated=final[1])
