"""RQ jobs of notifications (enqueued by dotted path from ``k8x_core.runs.finish``
and ``k8x_core.notify.deliveries``); the domain is ``k8x_core.notify``."""

from __future__ import annotations

from rq import get_current_job

from k8x_core.notify.deliveries import delivery_attempt, run_notify


class NotificationNotSent(RuntimeError):
    """Raised so that RQ tries the delivery again (its Retry, with backoff)."""


def notify_run(run_id: str) -> int:
    """Create and enqueue the deliveries of a finished run; returns how many."""
    return len(run_notify(run_id=run_id))


def notify_deliver(delivery_id: int) -> str:
    """Send one delivery. Not sent with retries left: raise, and RQ retries it
    after the backoff; on the last attempt the delivery is marked failed."""
    job = get_current_job()
    final = job is None or not job.retries_left
    if delivery_attempt(delivery_id=delivery_id, final=final):
        return "sent"
    if final:
        return "failed"
    raise NotificationNotSent(f"notification {delivery_id} not sent; retrying")
