"""Following runs on the cluster: status from Jobs and pods, and their logs.

One cluster-wide watch on K8X-labelled Jobs and one on K8X-labelled pods
(``app.kubernetes.io/managed-by=k8x``; ``--namespace`` narrows both to one
namespace). A single cluster-wide watch pair scales with the number of objects,
not of projects, and needs no restart when a project (namespace) is added.
Each watch resumes from its last resourceVersion, lists again on ``410 Gone``
and reconnects with backoff when the API is away. The watch threads only feed
a queue; one thread applies changes to the database, so run updates are
serialised and ``step()`` can be driven directly.

Status mapping (``run_observe``, a pure function) reads the Job's conditions
and its pods' container states:

- ``Complete`` → succeeded;
- ``Failed``/``FailureTarget`` with ``DeadlineExceeded`` → timed_out, otherwise
  failed with the container's reason when it says more than ``Error`` (e.g.
  ``OOMKilled``), else the Job's (``BackoffLimitExceeded``), and its exit code;
- a container stuck in ``ImagePullBackOff``, ``InvalidImageName`` or
  ``ErrImageNeverPull``, or in ``CreateContainerConfigError`` or
  ``CreateContainerError`` for K8X_CREATE_CONTAINER_GRACE_SECONDS after its pod
  was created (they can be transient) → failed with that reason, and the Job
  is deleted (Kubernetes would keep retrying until the deadline); while the
  run is still ``queued`` (its launcher has not confirmed the Job: it died, or
  is slow) such a wait is also the sign of a run Secret that may never come
  (the launcher writes the Secret and the Job at the same time), so the run is
  enqueued for launch once more: that launch adopts the Job and writes the
  Secret (k8x_core.runs.launch);
- a running container → running (``started_at`` = the first container start);
- a Job that disappears while its run is not over → failed, ``JobVanished``.

Logs: while a container runs, a thread follows its log (``timestamps=true``),
publishes lines in small batches to the console's channel group and appends
them to the run's stored log, one RunLog chunk per batch (so ``GET
/api/runs/<id>/log`` shows what has arrived). It reads no more than the cap has
room for and cuts lines over K8X_LOG_LINE_MAX_BYTES. When the run ends, the full
log of every attempt (pod) is read and stored, up to K8X_LOG_CAP_BYTES
(``log_truncated`` marks a cut), in the transaction that sets the terminal status,
so it outlives the pods.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from k8x_core import kube
from k8x_core.metrics import WATCH_LOG_BYTES
from k8x_core.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Run, RunStatus, run_job_name
from k8x_core.runs import jobspec
from k8x_core.runs.launch import service_queue_advance
from k8x_core.runs.live import live_publish_log, live_publish_status
from k8x_core.runs.loglines import LogLineSplitter
from k8x_core.runs.logs import (
    container_names,
    log_cap,
    log_capped,
    run_log_append,
    run_log_final,
    run_log_size,
    run_log_store,
)
from k8x_core.runs.queue import run_enqueue_now
from k8x_core.runs.transitions import run_transition
from k8x_core.watch.observe import Observation, container_statuses, run_observe

log = logging.getLogger(__name__)


class LogFollower(threading.Thread):
    """Follows one container's log while it runs: batches go to the console's channel
    group and are appended to the run's stored log, until the run ends or the cap is
    reached; then it stops reading that container.

    Hostile output stays cheap: the API is asked for no more bytes than the cap has
    room for (``limitBytes``), lines are cut at K8X_LOG_LINE_MAX_BYTES by one linear
    scan (``LogLineSplitter``, at most one line cap held), and a batch is flushed at
    FLUSH_LINES lines or FLUSH_BYTES bytes as well as every FLUSH_SECONDS."""

    FLUSH_SECONDS = 0.25
    FLUSH_LINES = 200
    FLUSH_BYTES = 256 * 1024

    def __init__(
        self, *, watcher: Watcher, run_id: str, namespace: str, pod: str, container: str, prefix: bool
    ) -> None:
        super().__init__(name=f"log-{pod}-{container}", daemon=True)
        self.watcher = watcher
        self.run_id = run_id
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.prefix = prefix
        self.bytes_read = 0
        self._batch: list[str] = []
        self._batch_bytes = 0
        self._batch_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._full = threading.Event()  # the cap is reached or the run is over: stop reading

    def run(self) -> None:
        try:
            self._follow()
        except Exception:
            log.warning("log follow of %s/%s failed", self.pod, self.container, exc_info=True)
        finally:
            connection.close()

    def _follow(self) -> None:
        limit = self.watcher.log_room(self.run_id)
        if limit <= 0:
            return
        splitter = LogLineSplitter(
            line_max=int(settings.K8X_LOG_LINE_MAX_BYTES), container=self.container if self.prefix else None
        )
        # Lines are flushed by time as well as by size: a quiet container's last
        # line must not wait for the next one.
        done = threading.Event()

        def flusher() -> None:
            while not done.wait(self.FLUSH_SECONDS):
                self._flush_pending()
            connection.close()

        timer = threading.Thread(target=flusher, name=f"{self.name}-flush", daemon=True)
        timer.start()
        try:
            for chunk in kube.pod_log_chunks(
                namespace=self.namespace, name=self.pod, container=self.container, limit_bytes=limit
            ):
                # Bytes followed are counted here, and only here.
                self.bytes_read += len(chunk)
                WATCH_LOG_BYTES.inc(len(chunk))
                if self._add(splitter.feed(chunk)):
                    self._flush_pending()
                if self._full.is_set() or self.watcher.stopping.is_set():
                    break
            else:
                self._add(splitter.finish(cut=self.bytes_read >= limit))
        finally:
            done.set()
            timer.join(timeout=5)
            self._flush_pending()

    def _add(self, lines: list[str]) -> bool:
        """Queue lines for the next flush; True when the batch should go now."""
        if not lines:
            return False
        with self._batch_lock:
            self._batch.extend(lines)
            self._batch_bytes += sum(len(line) for line in lines)
            return len(self._batch) >= self.FLUSH_LINES or self._batch_bytes >= self.FLUSH_BYTES

    def _flush_pending(self) -> None:
        # One flush at a time (the reader's and the timer's): batches are stored in order.
        with self._flush_lock:
            with self._batch_lock:
                lines, self._batch, self._batch_bytes = self._batch, [], 0
            self._flush(lines)

    def _flush(self, lines: list[str]) -> None:
        if not lines:
            return
        live_publish_log(run_id=self.run_id, lines=lines)
        if not self.watcher.log_append(self.run_id, lines):
            self._full.set()


# --- the watcher ------------------------------------------------------------------------------


@dataclass
class _Msg:
    kind: str  # "jobs" | "pods"
    event: str  # ADDED | MODIFIED | DELETED | RELIST
    obj: dict[str, Any] | None = None
    items: list[dict[str, Any]] = field(default_factory=list)


def _slim(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What the watcher keeps of a Job or pod: a Job's metadata and status, a pod
    without its containers' environment (which holds the whole event, up to 64 KiB
    per container), neither with managedFields. The cache holds every live run's
    Job and pods: the full objects made most of the watcher's memory under load."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
    if kind == "jobs":
        return {k: v for k, v in (("apiVersion", obj.get("apiVersion")), ("kind", obj.get("kind"))) if v} | {
            "metadata": meta or {},
            "status": obj.get("status") or {},
        }
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec = dict(spec)
        for key in ("initContainers", "containers"):
            if isinstance(spec.get(key), list):
                spec[key] = [
                    {k: v for k, v in c.items() if k != "env"} if isinstance(c, dict) else c for c in spec[key]
                ]
    return {**obj, "metadata": meta or {}, "spec": spec or {}}


def _run_id_of(obj: dict[str, Any]) -> str | None:
    rid = ((obj.get("metadata") or {}).get("labels") or {}).get(jobspec.LABEL_RUN_ID)
    return str(rid) if rid else None


class Watcher:
    """Keeps runs in step with their Jobs and pods. ``start()`` the watch threads, then
    call ``step()`` in a loop (``run_forever``)."""

    VANISHED_CHECK_SECONDS = 15.0
    RESYNC_SECONDS = 60.0

    def __init__(self, *, namespace: str | None = None, follow_logs: bool = True) -> None:
        self.namespace = namespace
        self.follow_logs = follow_logs
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, dict[str, Any]]] = {}
        self.inbox: queue.Queue[_Msg] = queue.Queue()
        self.stopping = threading.Event()
        self.synced = {"jobs": threading.Event(), "pods": threading.Event()}
        self._threads: list[threading.Thread] = []
        self._followers: dict[tuple[str, str, str], LogFollower] = {}
        self._followers_lock = threading.Lock()
        self._followers_by_run: dict[str, set[tuple[str, str, str]]] = {}
        self._log_bytes: dict[str, int] = {}
        self._log_lock = threading.Lock()
        self._finished: set[str] = set()
        self._owned: set[str] = set()
        self._announced: set[str] = set()
        self._relaunched: set[str] = set()
        self._last_vanished_check = 0.0
        self._last_resync = time.monotonic()
        self._retry: set[str] = set()
        self._deleted_pending: dict[str, dict[str, Any]] = {}

    # --- watch threads -------------------------------------------------------------

    def start(self) -> None:
        for kind in ("jobs", "pods"):
            t = threading.Thread(target=self._watch_loop, args=(kind,), name=f"watch-{kind}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.stopping.set()

    def _list(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        selector = jobspec.MANAGED_SELECTOR
        if kind == "jobs":
            return kube.job_list(namespace=self.namespace, label_selector=selector)
        return kube.pod_list(namespace=self.namespace, label_selector=selector)

    def _watch_loop(self, kind: str) -> None:
        path = kube.jobs_path(self.namespace) if kind == "jobs" else kube.pods_path(self.namespace)
        rv = ""
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                if not rv:
                    items, rv = self._list(kind)
                    self.inbox.put(_Msg(kind=kind, event="RELIST", items=[_slim(kind, o) for o in items]))
                    self.synced[kind].set()
                for ev in kube.watch(path=path, label_selector=jobspec.MANAGED_SELECTOR, resource_version=rv):
                    obj = ev.get("object") or {}
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = str(new_rv)
                    if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self.inbox.put(_Msg(kind=kind, event=str(ev["type"]), obj=_slim(kind, obj)))
                    if self.stopping.is_set():
                        return
                backoff = 0.5
            except kube.KubeGone:
                log.info("%s watch: resourceVersion too old, listing again", kind)
                rv = ""
            except Exception:
                log.warning("%s watch failed; reconnecting in %.1fs", kind, backoff, exc_info=True)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    # --- the processing thread --------------------------------------------------------

    def run_forever(self) -> None:
        self.start()
        try:
            while not self.stopping.is_set():
                self.step(timeout=1.0)
        finally:
            connection.close()

    def step(self, *, timeout: float = 1.0) -> int:
        """Apply what the watches brought (waiting up to ``timeout`` for the first
        message), then update the runs concerned. Returns how many runs were looked at."""
        dirty: set[str] = set()
        try:
            msg = self.inbox.get(timeout=timeout)
        except queue.Empty:
            msg = None
        deleted: dict[str, dict[str, Any]] = {}
        while msg is not None:
            self._apply(msg, dirty, deleted)
            try:
                msg = self.inbox.get_nowait()
            except queue.Empty:
                msg = None
        close_old_connections()
        # Runs whose last sync failed (database or API away) are tried again, and
        # every unfinished run is looked at now and then, whatever the watches say.
        dirty |= self._retry
        self._retry = set()
        for rid, obj in self._deleted_pending.items():
            deleted.setdefault(rid, obj)
        self._deleted_pending = {}
        if time.monotonic() - self._last_resync > self.RESYNC_SECONDS:
            self._last_resync = time.monotonic()
            dirty |= {rid for rid in self.jobs if rid not in self._finished}
        for run_id in sorted(dirty):
            try:
                self.run_sync(run_id, deleted_job=deleted.get(run_id))
            except Exception:
                log.warning("run %s: sync failed; will retry", run_id, exc_info=True)
                if deleted.get(run_id) is not None:
                    # Keep the Job's last state: its DELETED event will not come again.
                    self._deleted_pending[run_id] = deleted[run_id]
                self._retry.add(run_id)
                close_old_connections()
        if time.monotonic() - self._last_vanished_check > self.VANISHED_CHECK_SECONDS and all(
            e.is_set() for e in self.synced.values()
        ):
            self._last_vanished_check = time.monotonic()
            self.check_vanished()
        return len(dirty)

    def _apply(self, msg: _Msg, dirty: set[str], deleted: dict[str, dict[str, Any]]) -> None:
        if msg.event == "RELIST":
            if msg.kind == "jobs":
                dirty.update(self.jobs)
                self.jobs = {}
                for obj in msg.items:
                    rid = _run_id_of(obj)
                    if rid:
                        self.jobs[rid] = obj
                        dirty.add(rid)
            else:
                dirty.update(self.pods)
                self.pods = {}
                for obj in msg.items:
                    rid = _run_id_of(obj)
                    if rid:
                        self.pods.setdefault(rid, {})[obj["metadata"]["name"]] = obj
                        dirty.add(rid)
            return
        obj = msg.obj or {}
        rid = _run_id_of(obj)
        if not rid:
            return
        dirty.add(rid)
        name = str((obj.get("metadata") or {}).get("name") or "")
        if msg.kind == "jobs":
            if msg.event == "DELETED":
                self.jobs.pop(rid, None)
                deleted[rid] = obj
            else:
                self.jobs[rid] = obj
        elif msg.event == "DELETED":
            # Keep the pod's last state until its Job goes: it still explains the outcome.
            self.pods.setdefault(rid, {})[name] = obj
        else:
            self.pods.setdefault(rid, {})[name] = obj

    def run_sync(self, run_id: str, *, deleted_job: dict[str, Any] | None = None) -> None:
        """Bring one run in step with its Job and pods."""
        if run_id in self._finished:
            if deleted_job is not None:
                # The Job is gone for good (TTL or cancel): nothing more to follow.
                self._forget(run_id)
                self._finished.discard(run_id)
            return
        try:
            uuid.UUID(run_id)
        except ValueError:
            return
        run = Run.objects.select_related("service__project").filter(pk=run_id).first()
        if run is None:
            # Another K8X's (or a deleted run's) Job.
            self._forget(run_id)
            return
        if run.status in TERMINAL_STATUSES:
            if run_id in self.jobs:
                cached_job = self.jobs[run_id]
                self._own_run_secret(run, cached_job)
                deleting = (cached_job.get("metadata") or {}).get("deletionTimestamp")
                if run.status == RunStatus.CANCELLED and not deleting:
                    # The cancel could not delete it (API away, or a launch racing the cancel).
                    kube.job_delete(namespace=run.service.project.namespace, name=run_job_name(run.pk))
            self._finish_local(run_id, deleted=deleted_job is not None)
            return
        job = self.jobs.get(run_id)
        pods = list(self.pods.get(run_id, {}).values())
        if job is None and deleted_job is not None:
            obs = run_observe(deleted_job, pods)
            if not obs.is_terminal:
                obs = Observation(
                    status=RunStatus.FAILED,
                    reason="JobVanished",
                    message="the Job was deleted before the run ended",
                    attempts=obs.attempts,
                    pod_name=obs.pod_name,
                    started_at=obs.started_at,
                    finished_at=timezone.now(),
                )
            self.apply(run, obs, pods=pods)
            self.pods.pop(run_id, None)
            return
        if job is None:
            return
        self._own_run_secret(run, job)
        obs = run_observe(job, pods)
        if obs.recheck and run.status == RunStatus.QUEUED:
            self._relaunch(run)
        if (
            run.status in (RunStatus.QUEUED, RunStatus.STARTING)
            and obs.status == RunStatus.STARTING
            and run_id not in self._announced
        ):
            self._announced.add(run_id)
            self._publish(run, RunStatus.STARTING)
        self.apply(run, obs, pods=pods)
        if obs.recheck:
            self._retry.add(run_id)
        if self.follow_logs and not obs.is_terminal:
            self._follow(run, pods)

    def _relaunch(self, run: Run) -> None:
        """Enqueue the launch of a ``queued`` run whose pod waits on its configuration
        (once per run): a launcher that died between its two writes leaves a Job
        without the run Secret, and the reconciler would come only after the grace
        period has failed the run. The launch is idempotent (409 -> adopt)."""
        run_id = str(run.pk)
        if run_id in self._relaunched:
            return
        try:
            run_enqueue_now(run_id=run.pk)
        except Exception:
            # Redis away: the reconciler enqueues it later; try again on the next sync.
            log.warning("run %s: could not enqueue its launch again", run.pk, exc_info=True)
            return
        self._relaunched.add(run_id)
        log.info("run %s: queued with a Job whose pod waits on its configuration; launching it again", run.pk)

    def _own_run_secret(self, run: Run, job: dict[str, Any]) -> None:
        """Make the Job own its run Secret (done here, off the launch path), so the
        Secret is collected with the Job (TTL, cancel, kubectl delete)."""
        uid = str((job.get("metadata") or {}).get("uid") or "")
        if not uid or uid in self._owned:
            return
        try:
            kube.secret_set_owner(
                namespace=run.service.project.namespace,
                name=jobspec.run_secret_name(run.pk),
                owner=kube.owner_reference({"apiVersion": "batch/v1", "kind": "Job", **job}),
            )
        except kube.KubeNotFound:
            pass
        except kube.KubeError:
            log.warning("run %s: could not make the Job own its Secret", run.pk, exc_info=True)
            return
        self._owned.add(uid)

    def apply(self, run: Run, obs: Observation, *, pods: list[dict[str, Any]]) -> bool:
        """Write an observation to the run (forward moves only). True if it changed status."""
        namespace = run.service.project.namespace
        fields: dict[str, Any] = {"attempts": obs.attempts, "job_name": run_job_name(run.pk)}
        if obs.pod_name:
            fields["pod_name"] = obs.pod_name
        if obs.status == RunStatus.STARTING:
            return False
        if obs.status == RunStatus.RUNNING:
            if run.status == RunStatus.RUNNING:
                if run.attempts != obs.attempts or (obs.pod_name and run.pod_name != obs.pod_name):
                    Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(**fields)
                return False
            began = obs.started_at or timezone.now()
            if run_transition(run_id=run.pk, to=RunStatus.RUNNING, started_at=began, **fields):
                self._publish(run, RunStatus.RUNNING, started_at=began.isoformat())
                return True
            return False
        # Terminal.
        finished = obs.finished_at or timezone.now()
        started: datetime | None = run.started_at or obs.started_at
        if started and started > finished:
            started = finished
        # The final log goes in with the terminal status, in one update: whoever
        # sees the run ended (API, console, a test) also sees its whole log.
        try:
            final = run_log_final(run_id=run.pk, namespace=namespace, pods=pods or None)
        except kube.KubeError:
            final = None
            log.warning("run %s: final log not read; keeping the log followed live", run.pk, exc_info=True)
        if final is not None:
            fields["log_truncated"] = final.truncated
        with transaction.atomic():
            moved = run_transition(
                run_id=run.pk,
                to=obs.status,
                exit_code=obs.exit_code,
                reason=obs.reason[:100],
                message=obs.message,
                finished_at=finished,
                started_at=started,
                **fields,
            )
            if moved and final is not None:
                run_log_store(run_id=run.pk, lines=final.lines)
        if obs.delete_job:
            kube.job_delete(namespace=namespace, name=run_job_name(run.pk), propagation="Background")
        if not moved:
            return False
        self._publish(
            run,
            obs.status,
            exit_code=obs.exit_code,
            reason=obs.reason,
            started_at=started.isoformat() if started else None,
            finished_at=finished.isoformat(),
        )
        self._finish_local(str(run.pk), deleted=False)
        service_queue_advance(service_id=run.service_id)
        return True

    def _publish(self, run: Run, status: str, **extra: Any) -> None:
        live_publish_status(
            run_id=run.pk, project_id=run.service.project_id, service=run.service.name, status=status, **extra
        )

    def _finish_local(self, run_id: str, *, deleted: bool) -> None:
        self._finished.add(run_id)
        self._announced.discard(run_id)
        self._relaunched.discard(run_id)
        with self._followers_lock:
            for key in self._followers_by_run.pop(run_id, set()):
                self._followers.pop(key, None)
        with self._log_lock:
            self._log_bytes.pop(run_id, None)
        if deleted:
            self._forget(run_id)

    def _forget(self, run_id: str) -> None:
        self.jobs.pop(run_id, None)
        self.pods.pop(run_id, None)

    def check_vanished(self) -> int:
        """Fail the runs the database thinks are starting/running whose Job is gone."""
        cutoff = timezone.now() - settings_vanish_grace()
        candidates = Run.objects.filter(status__in=list(ACTIVE_STATUSES), updated_at__lt=cutoff).select_related(
            "service__project"
        )
        if self.namespace:
            candidates = candidates.filter(service__project__namespace=self.namespace)
        failed = 0
        for run in candidates[:500]:
            rid = str(run.pk)
            if rid in self.jobs:
                continue
            try:
                kube.job_get(namespace=run.service.project.namespace, name=run_job_name(run.pk))
                continue
            except kube.KubeNotFound:
                pass
            obs = Observation(
                status=RunStatus.FAILED,
                reason="JobVanished",
                message="the run's Job no longer exists",
                finished_at=timezone.now(),
                attempts=run.attempts,
                pod_name=run.pod_name,
            )
            if self.apply(run, obs, pods=list(self.pods.get(rid, {}).values())):
                failed += 1
        return failed

    # --- log following ---------------------------------------------------------------------

    def _follow(self, run: Run, pods: list[dict[str, Any]]) -> None:
        namespace = run.service.project.namespace
        for pod in pods:
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Running",):
                continue
            names = container_names(pod)
            for cs in container_statuses(pod):
                state = cs.get("state") or {}
                if not state.get("running"):
                    continue
                key = (str(pod["metadata"]["name"]), str(cs.get("name")), str(cs.get("containerID") or ""))
                with self._followers_lock:
                    if key in self._followers:
                        continue
                    follower = LogFollower(
                        watcher=self,
                        run_id=str(run.pk),
                        namespace=namespace,
                        pod=key[0],
                        container=key[1],
                        prefix=len(names) > 1,
                    )
                    self._followers[key] = follower
                    self._followers_by_run.setdefault(str(run.pk), set()).add(key)
                self.log_track(str(run.pk))
                follower.start()

    def log_track(self, run_id: str) -> None:
        """Start counting a run's stored bytes (from what is stored now), for the cap."""
        with self._log_lock:
            if run_id in self._log_bytes:
                return
        size = run_log_size(run_id)
        with self._log_lock:
            self._log_bytes.setdefault(run_id, size)

    def log_room(self, run_id: str) -> int:
        """Bytes the run's stored log still has room for (0 when not followed)."""
        with self._log_lock:
            used = self._log_bytes.get(run_id)
        return 0 if used is None else max(0, log_cap() - used)

    def log_append(self, run_id: str, lines: list[str]) -> bool:
        """Append followed lines to the run's stored log while the run is not over,
        within the cap. False when no more will be stored (cap reached, run over)."""
        if self.stopping.is_set():
            # A stopped watcher (shutdown, or it lost the lead) writes nothing more.
            return False
        text = "".join(line + "\n" for line in lines)
        cap = log_cap()
        with self._log_lock:
            used = self._log_bytes.get(run_id)
            if used is None:
                return False
            if used >= cap:
                # Lines beyond a cap already met (exactly): the log is cut all the same.
                text, truncated = "", True
            else:
                text, truncated = log_capped(text, cap - used)
                self._log_bytes[run_id] = cap if truncated else used + len(text.encode())
        return run_log_append(run_id=run_id, text=text, truncated=truncated) and not truncated


def settings_vanish_grace() -> timedelta:
    return timedelta(seconds=float(settings.K8X_VANISHED_GRACE_SECONDS))
