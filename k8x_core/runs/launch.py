"""Launching runs as Kubernetes Jobs, cancelling and re-running them.

Exactly one Job per run, whatever crashes: the Job's name is derived from the
run id, so a repeated launch (a retried RQ job, the reconciler re-enqueueing a
run whose worker died) meets ``409 Conflict`` and adopts the Job that is
there. The run moves ``queued -> starting`` only *after* the Job exists; a
worker killed between the two leaves a ``queued`` run with a Job, which the
next launch adopts and the watcher follows anyway (``queued -> running`` is a
forward move).

Max concurrency: the launch of a limited service holds its Service row lock
(``SELECT ... FOR UPDATE``) while it counts the service's ``starting`` and
``running`` runs, creates the Job and marks the run ``starting``, so two workers
never both take the last slot. A run over the limit stays ``queued``; only the
oldest queued runs (by ``created_at``) may take free slots, and when a run
ends the watcher enqueues the next ones (``service_queue_advance``).

Secrets reach the container only by reference: the service's merged secrets
are kept in one Kubernetes Secret per service (``k8x-svc-<service>``), and the
run token in the run's own Secret (``k8x-run-<hex>``; the watcher makes the Job
its owner when it first sees the Job, so it is collected with it, and the
launch itself costs two API writes: the Secret and the Job, see
``_create_job``). A project's registry logins are its image pull secret
``k8x-registry`` (k8x_core.runs.registry), and its run defaults and placement
go into every Job (k8x_core.runs.defaults).
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import signal
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from k8x_core import kube
from k8x_core.events.tokens import run_token_issue
from k8x_core.metrics import LAUNCH_LATENCY
from k8x_core.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Run, RunStatus, Service, TriggerKind, run_job_name
from k8x_core.runs import jobspec, validation
from k8x_core.runs.configs import SecretUndecryptable, registry_logins_reveal, secrets_resolve, secrets_reveal
from k8x_core.runs.defaults import project_run_defaults
from k8x_core.runs.launchread import LaunchRun, LaunchService, launch_run_read, launch_scope_read
from k8x_core.runs.live import live_publish_status
from k8x_core.runs.logs import run_log_store_final
from k8x_core.runs.namespaces import project_namespace_ensure
from k8x_core.runs.queue import run_enqueue
from k8x_core.runs.registry import registry_secret_sync
from k8x_core.runs.transitions import run_transition

log = logging.getLogger(__name__)


class LaunchResult(enum.StrEnum):
    STARTED = "started"  # this call created the Job
    ADOPTED = "adopted"  # the Job existed already (a repeated launch)
    DEFERRED = "deferred"  # over the service's max concurrency: still queued
    SKIPPED = "skipped"  # not queued any more (or gone)
    FAILED = "failed"  # the Job was refused; the run is failed with the API's message
    PAUSED = "paused"  # the service is paused: still queued, enqueued again on resume


def _failpoint(name: str) -> None:
    """Crash here, as hard as a power cut, when K8X_FAILPOINT names this point.

    Only the crash-recovery tests set it (they kill the worker between creating
    the Job and marking the run)."""
    if os.environ.get("K8X_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _publish(run: Run | LaunchRun, status: str, **extra: Any) -> None:
    live_publish_status(
        run_id=run.pk,
        project_id=run.service.project_id,
        service=run.service.name,
        status=status,
        **extra,
    )


# --- secrets ----------------------------------------------------------------------

_synced_lock = threading.Lock()
_synced: dict[tuple[str, str], tuple[str, float]] = {}
_SYNC_TTL_SECONDS = 30.0


def _digest(values: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def service_secrets_sync(
    *, service: Service | LaunchService, force: bool = False, values: dict[str, str] | None = None
) -> bool:
    """Make the service's Kubernetes Secret hold exactly its merged secret values.

    Called before every launch (cheap when nothing changed: the values' digest is
    remembered for a short while) and by whoever changes secrets. True when the
    Secret was written. ``values``: the already resolved secrets, to save a query."""
    namespace = service.project.namespace
    name = jobspec.service_secret_name(service.name)
    if values is None:
        values = secrets_resolve(service=service)
    digest = _digest(values)
    key = (namespace, name)
    now = time.monotonic()
    with _synced_lock:
        known = _synced.get(key)
    if not force and known and known[0] == digest and now - known[1] < _SYNC_TTL_SECONDS:
        return False
    project_namespace_ensure(project=service.project)
    kube.secret_apply(
        namespace=namespace,
        name=name,
        string_data=values,
        labels={jobspec.LABEL_PROJECT: service.project.slug, jobspec.LABEL_SERVICE: service.name},
    )
    with _synced_lock:
        _synced[key] = (digest, now)
    return True


def project_secrets_sync(*, project_id: int | None = None) -> int:
    """Sync the Secrets of every service of a project (all projects when None),
    after a project- or platform-scope secret changed. Returns how many were written."""
    services = Service.objects.select_related("project")
    if project_id is not None:
        services = services.filter(project_id=project_id)
    return sum(service_secrets_sync(service=s, force=True) for s in services)


# --- concurrency ----------------------------------------------------------------------


def _active_count(service_id: int) -> int:
    return Run.objects.filter(service_id=service_id, status__in=list(ACTIVE_STATUSES)).count()


def _oldest_queued(service_id: int, limit: int) -> list[uuid.UUID]:
    if limit <= 0:
        return []
    return list(
        Run.objects.filter(service_id=service_id, status=RunStatus.QUEUED)
        .order_by("created_at", "id")
        .values_list("id", flat=True)[:limit]
    )


def service_queue_advance(*, service_id: int) -> list[uuid.UUID]:
    """Enqueue the oldest queued runs of a concurrency-limited service that fit in its
    free slots (after a run ended). Returns their ids."""
    service = Service.objects.filter(pk=service_id).only("max_concurrency", "paused").first()
    if service is None or service.paused or not service.max_concurrency:
        return []
    free = service.max_concurrency - _active_count(service_id)
    ids = _oldest_queued(service_id, free)
    for rid in ids:
        run_enqueue(run_id=rid)
    return ids


# --- launching -------------------------------------------------------------------------------


def _end(run: Run | LaunchRun, *, to: RunStatus, reason: str, message: str) -> None:
    """End a run that never got a Job (failed before launch, or not to be launched)."""
    now = timezone.now()
    if run_transition(
        run_id=run.pk,
        to=to,
        reason=reason[:100],
        message=message,
        finished_at=now,
        job_name=run_job_name(run.pk),
    ):
        _publish(run, to, reason=reason, exit_code=None, finished_at=now.isoformat())
        service_queue_advance(service_id=run.service_id)


def _fail(run: LaunchRun, *, reason: str, message: str) -> None:
    _end(run, to=RunStatus.FAILED, reason=reason, message=message)


# Threads that create run Secrets while the launching thread creates the Job
# (one per launch thread: a chunk's launches each have one Secret in flight).
# Created on first use, per process (a fork must not inherit them).
_secret_pool: ThreadPoolExecutor | None = None
_secret_pool_pid = 0
_secret_pool_lock = threading.Lock()


def _secret_pool_get() -> ThreadPoolExecutor:
    global _secret_pool, _secret_pool_pid
    with _secret_pool_lock:
        if _secret_pool is None or _secret_pool_pid != os.getpid():
            _secret_pool = ThreadPoolExecutor(
                max_workers=max(1, int(settings.K8X_LAUNCH_THREADS)), thread_name_prefix="k8x-run-secret"
            )
            _secret_pool_pid = os.getpid()
        return _secret_pool


def _run_secret_create(namespace: str, run_id: uuid.UUID, data: dict[str, str], labels: dict[str, str]) -> bool:
    """Create the run's Secret; False when it was there already (a repeated launch:
    same name, same token claims)."""
    try:
        kube.secret_create(namespace=namespace, name=jobspec.run_secret_name(run_id), string_data=data, labels=labels)
    except kube.KubeConflict:
        return False
    return True


def _create_job(run: LaunchRun, build: jobspec.JobBuild, namespace: str) -> tuple[LaunchResult, dict[str, Any] | None]:
    """Create the run Secret and the Job (or adopt an existing Job).

    The Secret goes first, so the kubelet never meets a pod whose Secret is not
    there yet. With K8X_LAUNCH_SECRET_WITH_JOB the two API writes go out together
    instead: the pod comes only after the Job controller created it and the
    scheduler placed it, while the Secret lands in a few ms, so a launch costs
    one API round trip instead of two; but on a loaded node the kubelet
    sometimes cannot read the new Secret yet ("failed to sync secret cache") and
    backs off ~10 s before it starts the container. Returns only once both
    answered. A worker that dies in between may leave a Job without its Secret
    (or the reverse): the run is still ``queued``, and its next launch (the
    reconciler, or the watcher as soon as the pod waits for the Secret) adopts
    the Job and creates the Secret, a 409 on either being expected."""
    name = run_job_name(run.pk)
    labels = {
        jobspec.LABEL_PROJECT: run.service.project.slug,
        jobspec.LABEL_SERVICE: run.service.name,
        jobspec.LABEL_RUN_ID: str(run.pk),
    }
    secret: Future[bool] = Future()
    if settings.K8X_LAUNCH_SECRET_WITH_JOB:
        secret = _secret_pool_get().submit(_run_secret_create, namespace, run.pk, build.run_secret_data, labels)
    else:
        secret.set_result(_run_secret_create(namespace, run.pk, build.run_secret_data, labels))
    job: dict[str, Any] | None = None
    invalid: kube.KubeInvalid | None = None
    try:
        job = kube.job_create(namespace=namespace, job=build.job)
        LAUNCH_LATENCY.observe((timezone.now() - run.created_at).total_seconds())
    except kube.KubeConflict:
        pass
    except kube.KubeInvalid as exc:
        invalid = exc
    except BaseException:
        # The Secret's outcome is not needed (the run stays queued and is launched
        # again), but its write must not outlive this launch.
        futures_wait([secret])
        raise
    # Raises if the Secret could not be written (the API away past the retry
    # deadline): the run stays queued and its next launch writes it.
    secret_new = secret.result()
    if invalid is not None:
        if secret_new:
            kube.secret_delete(namespace=namespace, name=jobspec.run_secret_name(run.pk))
        _fail(run, reason=invalid.reason or "InvalidJob", message=invalid.message)
        return LaunchResult.FAILED, None
    if job is not None:
        return LaunchResult.STARTED, job
    job = kube.job_get(namespace=namespace, name=name)
    owner = ((job.get("metadata") or {}).get("labels") or {}).get(jobspec.LABEL_RUN_ID)
    if owner != str(run.pk):
        _fail(run, reason="JobNameTaken", message=f"a Job named {name} exists that is not this run's")
        return LaunchResult.FAILED, None
    return LaunchResult.ADOPTED, job


# Services whose pods Pod Security admission accepted, by namespace, level and
# the service's version (its id and ``updated_at``: any edit of the service is a
# new key, so a changed template is asked about again). Admission judges the
# pod's security fields and volume types, which come from the service's fields,
# the project's UID and the level; a run's environment, Secret names and the
# event-file volume (a Secret volume, allowed at every level) do not change its
# verdict. So a service's pods are asked about once per version, and the key
# costs no hashing of the pod spec. Bounded: cleared when full.
_admitted: dict[tuple[str, str, int, str, bool], bool] = {}
_admitted_lock = threading.Lock()
_ADMITTED_MAX = 4096


def _admission_refusal(build: jobspec.JobBuild, namespace: str, level: str, service: LaunchService) -> str:
    """Pod Security admission's refusal of the Job's pod, if any ("" when admitted).

    Admission judges the Job controller's pods, not the Job: a refused pod would
    leave the Job without pods and the run waiting. A dry run of the pod asks
    admission now, so the run fails with its message instead; an accepted
    service version is remembered, so its later runs cost no extra API call."""
    key = (namespace, level, service.id, service.updated_at.isoformat(), build.event_in_file)
    if key in _admitted:
        return ""
    template = build.job["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": build.job["metadata"]["name"], "namespace": namespace, **_labels_of(template)},
        "spec": template["spec"],
    }
    try:
        kube.pod_dry_run(namespace=namespace, pod=pod)
    except kube.KubeInvalid as exc:
        # Other refusals (a missing service account right after the namespace was
        # created, a field error) are the Job create's to report.
        return exc.message if "PodSecurity" in exc.message else ""
    with _admitted_lock:
        if len(_admitted) >= _ADMITTED_MAX:
            _admitted.clear()
        _admitted[key] = True
    return ""


def _labels_of(template: dict[str, Any]) -> dict[str, Any]:
    meta = template.get("metadata") or {}
    return {"labels": meta.get("labels") or {}}


def run_launch(*, run_id: uuid.UUID | str) -> LaunchResult:
    """Launch a queued run as a Job (idempotent). Raises kube.KubeUnavailable when the
    cluster cannot be reached within the retry deadline: the run stays queued and is
    launched again (RQ retry or the reconciler)."""
    run = launch_run_read(run_id=run_id)
    if run is None or run.status != RunStatus.QUEUED:
        return LaunchResult.SKIPPED
    service = run.service
    project = service.project
    namespace = project.namespace
    if not service.active:
        # Switched off after the run was queued: it never starts.
        _end(run, to=RunStatus.CANCELLED, reason="ServiceInactive", message=f"service {service.name} is inactive")
        return LaunchResult.SKIPPED
    if service.paused:
        # Held, without a Job, until resumed (k8x_core.runs.pause enqueues it then).
        return LaunchResult.PAUSED

    token = run_token_issue(
        run_id=run.pk,
        project_slug=project.slug,
        correlation_id=run.correlation_id,
        ttl_seconds=settings.K8X_RUN_TOKEN_TTL_SECONDS,
    )
    # The one validator, again: the stored template may predate a rule, or have
    # been written past the console (the database, an older K8X).
    problems = validation.service_check_stored(service=service)
    if problems:
        _fail(run, reason="PolicyViolation", message="; ".join(str(p) for p in problems))
        return LaunchResult.FAILED

    # One query for configs, secrets and registry logins serves the Job's
    # environment, its references and the syncs.
    configs, secret_entries, registry_entries = launch_scope_read(project_id=project.id, service_id=service.id)
    try:
        secret_values = secrets_reveal(secret_entries)
        logins = registry_logins_reveal(registry_entries)
    except SecretUndecryptable as exc:
        # Final, not retried: no launch attempt can decrypt it (the queue moves on).
        _fail(run, reason="SecretUndecryptable", message=str(exc))
        return LaunchResult.FAILED
    try:
        build = jobspec.job_build(
            run=run,
            service=service,
            project_slug=project.slug,
            namespace=namespace,
            event=run.event,
            configs=configs,
            secret_keys=sorted(secret_values),
            events_url=settings.K8X_EVENTS_URL,
            run_token=token,
            ttl_seconds_after_finished=settings.K8X_JOB_TTL_SECONDS,
            defaults=project_run_defaults(project=project, pull_secret=bool(logins)),
        )
    except jobspec.JobSpecInvalid as exc:
        _fail(run, reason="InvalidJobTemplate", message=str(exc))
        return LaunchResult.FAILED

    project_namespace_ensure(project=project)
    service_secrets_sync(service=service, values=secret_values)
    registry_secret_sync(project=project, logins=logins)
    refusal = _admission_refusal(build, namespace, project.pod_security_level, service)
    if refusal:
        _fail(run, reason="PodSecurity", message=refusal)
        return LaunchResult.FAILED

    if service.max_concurrency:
        with transaction.atomic():
            # The lock serialises this service's launches while slots are counted.
            Service.objects.select_for_update().filter(pk=service.pk).values_list("pk", flat=True).get()
            if not Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).exists():
                return LaunchResult.SKIPPED
            free = service.max_concurrency - _active_count(service.pk)
            oldest = _oldest_queued(service.pk, free)
            if run.pk not in oldest:
                # Older runs come first; make sure they are on their way.
                for rid in oldest:
                    run_enqueue(run_id=rid)
                return LaunchResult.DEFERRED
            result, job = _create_job(run, build, namespace)
            if job is None:
                return result
            _failpoint("after_job_create")
            marked = _mark_starting(run)
    else:
        result, job = _create_job(run, build, namespace)
        if job is None:
            return result
        _failpoint("after_job_create")
        marked = _mark_starting(run)

    # "starting" reaches the console from the watcher when it sees the Job: a live
    # update here would cost the launch path more than the Job create itself.
    if not marked and Run.objects.filter(pk=run.pk, status=RunStatus.CANCELLED).exists():
        # Cancelled while we were creating it: the cancel may have missed the Job.
        kube.job_delete(namespace=namespace, name=run_job_name(run.pk))
    return result


def _mark_starting(run: LaunchRun) -> bool:
    return run_transition(
        run_id=run.pk,
        to=RunStatus.STARTING,
        from_statuses=[RunStatus.QUEUED],
        job_name=run_job_name(run.pk),
    )


# --- cancel and re-run --------------------------------------------------------------------


def run_cancel(*, run_id: uuid.UUID | str, user: AbstractBaseUser | None) -> bool:
    """Cancel a run that has not ended: mark it ``cancelled``, keep the log it has so
    far, and delete its Job with foreground propagation (its pods go first).
    False when the run had already ended."""
    run = Run.objects.select_related("service__project").get(pk=run_id)
    if run.status in TERMINAL_STATUSES:
        return False
    who = getattr(user, "get_username", lambda: "")() if user is not None else ""
    now = timezone.now()
    message = f"cancelled by {who}" if who else "cancelled"
    if not run_transition(run_id=run.pk, to=RunStatus.CANCELLED, reason="Cancelled", message=message, finished_at=now):
        return False
    namespace = run.service.project.namespace
    try:
        run_log_store_final(run_id=run.pk, namespace=namespace)
    except kube.KubeError:
        log.warning("run %s: log not stored on cancel", run.pk, exc_info=True)
    try:
        kube.job_delete(namespace=namespace, name=run_job_name(run.pk), propagation="Foreground")
    except kube.KubeError:
        # The run is cancelled either way; the watcher deletes the Job of a cancelled run.
        log.warning("run %s: Job not deleted on cancel", run.pk, exc_info=True)
    _publish(run, RunStatus.CANCELLED, reason="Cancelled", finished_at=now.isoformat())
    service_queue_advance(service_id=run.service_id)
    return True


def run_rerun(*, run_id: uuid.UUID | str, user: AbstractBaseUser | None) -> Run:
    """A new run of the same service for the same event (and form values), trigger
    ``retry``, in the same correlation; queued for launch on commit."""
    original = Run.objects.select_related("service").get(pk=run_id)
    with transaction.atomic():
        run = Run.objects.create(
            service=original.service,
            event=original.event,
            trigger_kind=TriggerKind.RETRY,
            correlation_id=original.correlation_id or str(uuid.uuid4()),
            params=original.params,
            retry_of=original,
            requested_by=user if user is not None and user.is_authenticated else None,  # type: ignore[misc]
            status=RunStatus.QUEUED,
        )
        run_enqueue(run_id=run.pk)
    return run
