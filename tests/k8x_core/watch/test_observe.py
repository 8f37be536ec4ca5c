"""Status mapping from a Job and its pods: pure-function tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from k8x_core.models import RunStatus
from k8x_core.runs.logs import log_capped
from k8x_core.watch.observe import run_observe


def _job(*conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "k8x-run-x"}, "status": {"conditions": list(conditions), **status}}


def _cond(type_: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-24T10:00:09Z",
    }


def _pod(name: str, created: str, *, state: dict[str, Any], phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"containers": [{"name": "main"}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]},
    }


def _terminated(code: int, reason: str = "Error") -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "startedAt": "2026-11-24T10:00:01Z",
            "finishedAt": "2026-11-24T10:00:02Z",
        }
    }


def test_nothing_yet_is_starting() -> None:
    obs = run_observe(_job(), [])
    assert obs.status == RunStatus.STARTING
    assert obs.attempts == 0


def test_running_container_is_running_with_start_time() -> None:
    pod = _pod("p1", "2026-11-24T10:00:00Z", state={"running": {"startedAt": "2026-11-24T10:00:01Z"}})
    obs = run_observe(_job(active=1), [pod])
    assert obs.status == RunStatus.RUNNING
    assert obs.pod_name == "p1"
    assert obs.started_at is not None and obs.started_at.isoformat() == "2026-11-24T10:00:01+00:00"
    assert obs.attempts == 1


def test_complete_is_succeeded() -> None:
    pod = _pod("p1", "2026-11-24T10:00:00Z", state=_terminated(0, "Completed"), phase="Succeeded")
    obs = run_observe(_job(_cond("Complete"), succeeded=1, completionTime="2026-11-24T10:00:03Z"), [pod])
    assert obs.status == RunStatus.SUCCEEDED
    assert obs.exit_code == 0
    assert obs.finished_at is not None and obs.finished_at.second == 3


def test_backoff_limit_is_failed_with_exit_code_and_attempts() -> None:
    pods = [
        _pod("p2", "2026-11-24T10:00:05Z", state=_terminated(3), phase="Failed"),
        _pod("p1", "2026-11-24T10:00:00Z", state=_terminated(3), phase="Failed"),
    ]
    job = _job(_cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"), failed=2)
    obs = run_observe(job, pods)
    assert obs.status == RunStatus.FAILED
    assert obs.reason == "BackoffLimitExceeded"
    assert obs.exit_code == 3
    assert obs.attempts == 2
    assert obs.pod_name == "p2"


def test_oom_killed_reason_wins_over_backoff_limit() -> None:
    pod = _pod("p1", "2026-11-24T10:00:00Z", state=_terminated(137, "OOMKilled"), phase="Failed")
    obs = run_observe(_job(_cond("Failed", "BackoffLimitExceeded", "limit"), failed=1), [pod])
    assert obs.status == RunStatus.FAILED
    assert obs.reason == "OOMKilled"
    assert obs.exit_code == 137
    assert "BackoffLimitExceeded" in obs.message


def test_deadline_exceeded_is_timed_out() -> None:
    pod = _pod("p1", "2026-11-24T10:00:00Z", state={"running": {"startedAt": "2026-11-24T10:00:01Z"}})
    obs = run_observe(_job(_cond("FailureTarget", "DeadlineExceeded", "Job was active longer")), [pod])
    assert obs.status == RunStatus.TIMED_OUT
    assert obs.reason == "DeadlineExceeded"


def test_image_pull_backoff_fails_and_asks_to_delete_the_job() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope"'}}
    obs = run_observe(_job(active=1), [_pod("p1", "2026-11-24T10:00:00Z", state=waiting, phase="Pending")])
    assert obs.status == RunStatus.FAILED
    assert obs.reason == "ImagePullBackOff"
    assert "nope" in obs.message
    assert obs.delete_job


def test_err_image_pull_alone_is_not_yet_final() -> None:
    waiting = {"waiting": {"reason": "ErrImagePull", "message": "x"}}
    obs = run_observe(_job(active=1), [_pod("p1", "2026-11-24T10:00:00Z", state=waiting, phase="Pending")])
    assert obs.status == RunStatus.STARTING


@pytest.mark.parametrize("reason", ["CreateContainerConfigError", "CreateContainerError"])
def test_create_container_errors_fail_once_they_outlast_the_grace_period(reason: str) -> None:
    waiting = {"waiting": {"reason": reason, "message": 'secret "s" not found'}}
    pods = [_pod("p1", "2026-11-24T10:00:00Z", state=waiting, phase="Pending")]
    created = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
    # Right after the pod is created it can be transient (the kubelet's secret
    # cache not yet allowed to see a new Secret): still starting, look again soon.
    early = run_observe(_job(active=1), pods, now=created + timedelta(seconds=3), grace_seconds=30)
    assert early.status == RunStatus.STARTING
    assert early.recheck
    late = run_observe(_job(active=1), pods, now=created + timedelta(seconds=31), grace_seconds=30)
    assert late.status == RunStatus.FAILED
    assert late.reason == reason
    assert "not found" in late.message
    assert late.delete_job
    assert not late.recheck


def test_image_pull_back_off_needs_no_grace_period() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}}
    pods = [_pod("p1", "2026-11-24T10:00:00Z", state=waiting, phase="Pending")]
    now = datetime(2026, 11, 24, 10, 0, 1, tzinfo=UTC)
    assert run_observe(_job(active=1), pods, now=now, grace_seconds=30).status == RunStatus.FAILED


def test_log_cap_keeps_whole_lines() -> None:
    text = "a" * 10 + "\n" + "b" * 10 + "\n"
    assert log_capped(text, 100) == (text, False)
    assert log_capped(text, 15) == ("a" * 10 + "\n", True)
