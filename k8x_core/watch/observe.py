"""What the cluster says about a run: pure functions from a Job and its pods to a
run status, tested without a cluster (see ``k8x_core.watch.watcher`` for the mapping)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from k8x_core.models import TERMINAL_STATUSES, RunStatus
from k8x_core.runs.logs import pod_sort_key

FATAL_WAITING_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
# The kubelet retries these by itself, and right after a pod is created they can
# be transient (e.g. "failed to sync secret cache" while the node authorizer has
# not yet linked the new pod to the run's new Secret): final only once they have
# lasted K8X_CREATE_CONTAINER_GRACE_SECONDS since the pod was created.
RETRIED_WAITING_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
UNINFORMATIVE_EXIT_REASONS = frozenset({"", "Error", "Completed"})
NOT_OVER = [RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING]


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class Observation:
    """What the cluster says about a run."""

    status: RunStatus
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    attempts: int = 0
    pod_name: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    delete_job: bool = False
    # Not final yet, but look again soon even if no watch event comes (a grace period runs).
    recheck: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


def container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def _first_start(pods: Iterable[dict[str, Any]]) -> datetime | None:
    starts: list[datetime] = []
    for pod in pods:
        for cs in container_statuses(pod):
            state = cs.get("state") or {}
            for key in ("running", "terminated"):
                t = parse_time((state.get(key) or {}).get("startedAt"))
                if t:
                    starts.append(t)
    return min(starts) if starts else None


def _last_termination(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The terminated state that explains the outcome: in the latest pod that has one,
    the first container that failed, else its first terminated container."""
    for pod in reversed(pods):
        terminated: list[dict[str, Any]] = []
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            t = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
            if t:
                terminated.append(t)
        if not terminated:
            continue
        failed = [t for t in terminated if t.get("exitCode")]
        return failed[0] if failed else terminated[0]
    return None


def run_observe(
    job: dict[str, Any], pods: list[dict[str, Any]], *, now: datetime | None = None, grace_seconds: float | None = None
) -> Observation:
    """The run's state from its Job and the Job's pods (``now`` and
    ``grace_seconds``: for the retried waiting reasons; default the clock and
    K8X_CREATE_CONTAINER_GRACE_SECONDS)."""
    pods = sorted(pods, key=pod_sort_key)
    jstatus = job.get("status") or {}
    counted = int(jstatus.get("active") or 0) + int(jstatus.get("failed") or 0) + int(jstatus.get("succeeded") or 0)
    attempts = max(len(pods), counted)
    pod_name = str((pods[-1].get("metadata") or {}).get("name") or "") if pods else ""
    started = _first_start(pods)
    conditions = {
        c.get("type"): c for c in jstatus.get("conditions") or [] if str(c.get("status")) == "True" and c.get("type")
    }
    base: dict[str, Any] = {"attempts": attempts, "pod_name": pod_name, "started_at": started}

    done = conditions.get("Complete") or conditions.get("SuccessCriteriaMet")
    if done:
        finished = parse_time(jstatus.get("completionTime")) or parse_time(done.get("lastTransitionTime"))
        return Observation(status=RunStatus.SUCCEEDED, exit_code=0, finished_at=finished, **base)

    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed:
        job_reason = str(failed.get("reason") or "Failed")
        job_message = str(failed.get("message") or "")
        term = _last_termination(pods)
        exit_code = int(term["exitCode"]) if term and term.get("exitCode") is not None else None
        finished = parse_time(failed.get("lastTransitionTime"))
        if job_reason == "DeadlineExceeded":
            return Observation(
                status=RunStatus.TIMED_OUT,
                reason=job_reason,
                message=job_message,
                exit_code=exit_code,
                finished_at=finished,
                **base,
            )
        reason = job_reason
        message = job_message
        term_reason = str((term or {}).get("reason") or "")
        if term_reason not in UNINFORMATIVE_EXIT_REASONS:
            reason = term_reason
            message = f"{job_reason}: {job_message}" if job_message else job_reason
        return Observation(
            status=RunStatus.FAILED,
            reason=reason,
            message=message,
            exit_code=exit_code,
            finished_at=finished,
            **base,
        )

    running = False
    recheck = False
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        for cs in container_statuses(pod):
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") in FATAL_WAITING_REASONS and phase not in ("Succeeded", "Failed"):
                if waiting.get("reason") in RETRIED_WAITING_REASONS:
                    if grace_seconds is None:
                        grace_seconds = float(settings.K8X_CREATE_CONTAINER_GRACE_SECONDS)
                    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
                    age = ((now or timezone.now()) - created).total_seconds() if created else grace_seconds
                    if age < grace_seconds:
                        recheck = True
                        continue
                return Observation(
                    status=RunStatus.FAILED,
                    reason=str(waiting["reason"]),
                    message=str(waiting.get("message") or ""),
                    finished_at=timezone.now(),
                    delete_job=True,
                    **base,
                )
            if state.get("running") or state.get("terminated"):
                running = True
        if phase in ("Running", "Succeeded", "Failed"):
            running = True
    if running:
        return Observation(status=RunStatus.RUNNING, recheck=recheck, **base)
    return Observation(status=RunStatus.STARTING, recheck=recheck, **base)
