"""The workers' RQ worker class: rq's ``SimpleWorker`` (no fork per job) that serves
the health port (k8x_core.process.health) on K8X_HEALTH_PORT and counts its jobs.

``manage.py rqworker --worker-class worker.health.HealthWorker k8x`` (deploy/Procfile
gives each worker its own port through the environment: rqworker's options are
django-rq's). Alive: the work loop came round (it wakes at least every
``DEQUEUE_SECONDS`` while idle); ready: its last Redis heartbeat went through.

It also saves rq's per-job Redis round trips that carry nothing new (a launch
at 20 events/s is one RQ job each): heartbeats at most every
``HEARTBEAT_SECONDS``, the suspension check at most every
``SUSPENSION_CHECK_SECONDS``, no rewrite of an unchanged state.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.worker import SimpleWorker

from k8x_core.metrics import WORKER_JOBS, collect_queue_depth
from k8x_core.process.collector import gc_freeze_after_setup
from k8x_core.process.health import HealthServer, ProcessHealth, health_serve

log = logging.getLogger(__name__)


class HealthWorker(SimpleWorker):
    # rq blocks up to worker_ttl - 15 s (405 s) waiting for a job; a shorter wait
    # keeps the liveness heartbeat well inside K8X_HEALTH_STALE_SECONDS.
    DEQUEUE_SECONDS = 10
    # At most one standalone Redis heartbeat in this many seconds.
    HEARTBEAT_SECONDS = 5.0
    # rq asks Redis whether workers are suspended (``rq suspend``) before every job:
    # a round trip per launch. An operator's suspend is honoured within this many
    # seconds instead (a burst worker still asks every time).
    SUSPENSION_CHECK_SECONDS = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.health = ProcessHealth(role="worker")
        self.health.ready_check = self._ready_problems
        self.health.collectors.append(collect_queue_depth)
        self.health_server: HealthServer | None = None
        self._redis_problem = "no heartbeat yet"
        self._redis_beat_at = float("-inf")
        self._suspension_checked_at = float("-inf")
        self._state_written: str | None = None

    @property
    def dequeue_timeout(self) -> int:
        return min(super().dequeue_timeout, self.DEQUEUE_SECONDS)

    def _ready_problems(self) -> dict[str, str]:
        return {"redis": self._redis_problem} if self._redis_problem else {}

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        # Served from the first dequeue on, i.e. after --with-scheduler forked its
        # scheduler process, which must not inherit the listening socket.
        if self.health_server is None:
            self.health_server = health_serve(health=self.health)
            gc_freeze_after_setup()
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def check_for_suspension(self, burst: bool) -> None:
        now = time.monotonic()
        if not burst and now - self._suspension_checked_at < self.SUSPENSION_CHECK_SECONDS:
            return
        super().check_for_suspension(burst)
        self._suspension_checked_at = time.monotonic()

    def set_state(self, state: str, pipeline: Any = None) -> None:
        # rq writes "idle" after every job and again before waiting for the next:
        # a state already written costs no second round trip (writes inside a
        # pipeline cost none of their own and always go).
        if pipeline is None and state == getattr(self, "_state_written", None):
            self._state = state
            return
        super().set_state(state, pipeline)
        self._state_written = state

    def register_birth(self) -> None:
        super().register_birth()
        self._state_written = None  # the worker's hash was written afresh

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        self.health.beat()
        now = time.monotonic()
        if pipeline is None and now - self._redis_beat_at < self.HEARTBEAT_SECONDS:
            # rq beats after every job and around every dequeue: three Redis round
            # trips each, for a key that lives worker_ttl + 60 s (480 s). One in
            # HEARTBEAT_SECONDS keeps it alive; beats inside a pipeline cost no
            # round trip of their own and always go.
            return
        try:
            super().heartbeat(timeout, pipeline)
        except RedisError as exc:
            self._redis_problem = str(exc)[:200] or exc.__class__.__name__
            raise
        self._redis_problem = ""
        if pipeline is None:
            self._redis_beat_at = now

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.health.beat()
        try:
            super().execute_job(job, queue)
        finally:
            status = job.get_status(refresh=False)
            WORKER_JOBS.labels(outcome=str(status.value if isinstance(status, JobStatus) else status)).inc()
            self.health.beat()
