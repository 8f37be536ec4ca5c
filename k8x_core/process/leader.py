"""Leader election through a ``coordination.k8s.io/v1`` Lease, as client-go's
``leaderelection`` does it.

Every candidate reads the Lease every retry period. The holder renews it
(``renewTime``); a candidate takes it over only when it has seen the same record
unchanged for ``leaseDurationSeconds`` by its *own* clock (no clock comparison
between machines), or when the holder released it (empty ``holderIdentity``).
Writes carry the ``resourceVersion`` that was read, so of two candidates racing
for the Lease one gets ``409`` and stays a candidate.

The holder acts only while its last successful renewal *started* less than the
renew deadline ago (2/3 of the lease duration). Another candidate can take the
Lease no earlier than a full lease duration after it saw that renewal, which came
after the renewal started; so a leader that cannot renew stops acting before
anyone else can start. ``lease_decide`` (what to write, given the Lease and now)
and ``leader_acting`` (may the holder still act) are pure functions.

A leader that shuts down cleanly releases the Lease, so a standby takes over at
its next retry instead of after the lease duration.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from django.conf import settings

from k8x_core import kube
from k8x_core.metrics import LEADER
from k8x_core.process.health import ProcessHealth

log = logging.getLogger(__name__)


def _micro_time(t: datetime) -> str:
    # The Lease's MicroTime format.
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec, as the election reads and writes it."""

    holder: str
    duration_seconds: int
    acquire_time: str = ""
    renew_time: str = ""
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LeaseRecord:
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


class LeaseAction(enum.StrEnum):
    CREATE = "create"  # no Lease yet: create it, holding it
    RENEW = "renew"  # we hold it: move renewTime on
    ACQUIRE = "acquire"  # released, or its holder stopped renewing: take it over
    WAIT = "wait"  # someone else holds it and renewed recently enough: stay a candidate


@dataclass(frozen=True)
class LeaseDecision:
    action: LeaseAction
    # What to write (None for WAIT).
    record: LeaseRecord | None
    # The record as last seen, and when (monotonic) it was first seen like that.
    observed: LeaseRecord | None
    observed_at: float


def lease_decide(
    *,
    current: LeaseRecord | None,
    identity: str,
    now: float,
    wall_now: datetime,
    observed: LeaseRecord | None,
    observed_at: float,
    duration_seconds: int,
) -> LeaseDecision:
    """What ``identity`` should do with the Lease ``current`` (None: it does not exist).

    ``now`` is this process's monotonic clock, ``wall_now`` goes into the record;
    ``observed``/``observed_at`` are what the previous call returned (None/0.0 at first).
    A held Lease expires ``current.duration_seconds`` (the holder's own setting) after
    this process first saw its present record, whatever the clocks of other machines say."""
    stamp = _micro_time(wall_now)
    if current is None:
        record = LeaseRecord(
            holder=identity, duration_seconds=duration_seconds, acquire_time=stamp, renew_time=stamp, transitions=0
        )
        return LeaseDecision(LeaseAction.CREATE, record, None, now)
    if current != observed:
        observed, observed_at = current, now
    if current.holder == identity:
        record = replace(current, duration_seconds=duration_seconds, renew_time=stamp)
        return LeaseDecision(LeaseAction.RENEW, record, observed, observed_at)
    expired = now >= observed_at + max(current.duration_seconds, 1)
    if not current.holder or expired:
        record = LeaseRecord(
            holder=identity,
            duration_seconds=duration_seconds,
            acquire_time=stamp,
            renew_time=stamp,
            transitions=current.transitions + 1,
        )
        return LeaseDecision(LeaseAction.ACQUIRE, record, observed, observed_at)
    return LeaseDecision(LeaseAction.WAIT, None, observed, observed_at)


def leader_acting(*, renewed_at: float | None, now: float, renew_deadline: float) -> bool:
    """May the holder act: its last successful renewal started (``renewed_at``,
    monotonic) less than ``renew_deadline`` ago."""
    return renewed_at is not None and now - renewed_at < renew_deadline


def lease_timings(duration_seconds: float) -> tuple[float, float]:
    """(renew deadline, retry period) for a lease duration: client-go's defaults
    15 s / 10 s / 2 s, scaled."""
    return duration_seconds * 2.0 / 3.0, duration_seconds * 2.0 / 15.0


class LeaderElector:
    """Holds or waits for one Lease. ``start()`` runs ``step()`` every retry period in a
    daemon thread; the process acts only while ``is_leader()``. ``on_stop_leading`` runs
    (in the elector's thread) as soon as the elector sees it lost or cannot renew."""

    def __init__(
        self,
        *,
        role: str,
        name: str,
        namespace: str | None = None,
        identity: str | None = None,
        duration_seconds: int | None = None,
    ) -> None:
        self.role = role
        self.name = name
        self.namespace = namespace or settings.K8X_LEASE_NAMESPACE
        self.identity = identity or settings.K8X_POD_NAME
        self.duration_seconds = int(duration_seconds or settings.K8X_LEASE_DURATION_SECONDS)
        if self.duration_seconds < 1:
            raise ValueError(f"lease duration must be at least 1 second, not {self.duration_seconds}")
        self.renew_deadline, self.retry_period = lease_timings(self.duration_seconds)
        self.on_stop_leading: list[Callable[[], None]] = []
        self.renewed_at: float | None = None
        # Whether the last step reached the API (leader or standby): readiness.
        self.connected = False
        self.last_error = ""
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._was_leading = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        LEADER.labels(role=role).set_function(lambda: 1.0 if self.is_leader() else 0.0)

    def is_leader(self) -> bool:
        return leader_acting(renewed_at=self.renewed_at, now=time.monotonic(), renew_deadline=self.renew_deadline)

    def _budget(self, started: float) -> float:
        """Seconds this attempt may take: a leader must know before its renew deadline."""
        if self.renewed_at is not None and self.is_leader():
            return max(0.2, self.renewed_at + self.renew_deadline - started)
        return self.renew_deadline

    def step(self) -> bool:
        """One attempt to acquire or renew the Lease; whether this process leads now."""
        started = time.monotonic()
        end = started + self._budget(started)

        def limits() -> dict[str, Any]:
            left = max(0.1, end - time.monotonic())
            return {"deadline_seconds": left, "timeout": (min(2.0, left), left)}

        try:
            try:
                lease = kube.lease_get(namespace=self.namespace, name=self.name, **limits())
            except kube.KubeNotFound:
                lease = None
            current = LeaseRecord.from_spec(lease.get("spec") or {}) if lease is not None else None
            decision = lease_decide(
                current=current,
                identity=self.identity,
                now=started,
                wall_now=datetime.now(UTC),
                observed=self._observed,
                observed_at=self._observed_at,
                duration_seconds=self.duration_seconds,
            )
            self._observed, self._observed_at = decision.observed, decision.observed_at
            if decision.record is not None:
                spec = decision.record.to_spec()
                if lease is None:
                    try:
                        kube.lease_create(namespace=self.namespace, name=self.name, spec=spec, **limits())
                    except kube.KubeNotFound:
                        # The lease namespace is missing (embedded mode): create it, try again next step.
                        kube.namespace_ensure(name=self.namespace)
                        raise
                else:
                    rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
                    kube.lease_replace(
                        namespace=self.namespace, name=self.name, spec=spec, resource_version=rv, **limits()
                    )
                self.renewed_at = started
                if decision.action != LeaseAction.RENEW or not self._was_leading:
                    log.info(
                        "%s: %s now leads (lease %s/%s, %s)",
                        self.role,
                        self.identity,
                        self.namespace,
                        self.name,
                        decision.action.value,
                    )
            elif self._was_leading:
                holder = current.holder if current is not None else ""
                log.warning("%s: lease %s/%s is held by %s now", self.role, self.namespace, self.name, holder)
                self.renewed_at = None
            self.connected = True
            self.last_error = ""
        except kube.KubeConflict:
            # Someone else wrote the Lease between our read and our write: they won
            # this round (even against our own renewal: the record moved under us).
            self.connected = True
            self.renewed_at = None
        except kube.KubeError as exc:
            self.connected = False
            self.last_error = exc.message[:200]
            log.warning("%s: lease %s/%s: %s", self.role, self.namespace, self.name, exc.message)
        return self._check_transition()

    def _check_transition(self) -> bool:
        leading = self.is_leader()
        if self._was_leading and not leading:
            log.warning("%s: %s stops leading (lease %s/%s)", self.role, self.identity, self.namespace, self.name)
            for callback in self.on_stop_leading:
                try:
                    callback()
                except Exception:
                    log.exception("%s: stop-leading callback failed", self.role)
        self._was_leading = leading
        return leading

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.step()
            # Jitter spreads standbys' reads; a leader renews on the retry period.
            wait = self.retry_period if self.is_leader() else self.retry_period * (1.0 + 0.2 * random.random())  # noqa: S311
            deadline = time.monotonic() + wait
            while not self._stopping.is_set():
                left = deadline - time.monotonic()
                # Notice a renew deadline passing even while no step runs.
                if self._was_leading and not self.is_leader():
                    self._check_transition()
                if left <= 0:
                    break
                self._stopping.wait(min(left, 0.1))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"leader-{self.role}", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop trying; release the Lease if this process holds it (a standby takes
        over at its next retry instead of after the lease duration)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.renew_deadline + 1.0)
        leading = self.is_leader()
        self.renewed_at = None
        self._check_transition()
        if release and leading:
            self.release()

    def release(self) -> None:
        try:
            lease = kube.lease_get(namespace=self.namespace, name=self.name, deadline_seconds=2.0, timeout=(1.0, 2.0))
            current = LeaseRecord.from_spec(lease.get("spec") or {})
            if current.holder != self.identity:
                return
            spec = replace(current, holder="", duration_seconds=1, renew_time=_micro_time(datetime.now(UTC))).to_spec()
            rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
            kube.lease_replace(
                namespace=self.namespace,
                name=self.name,
                spec=spec,
                resource_version=rv,
                deadline_seconds=2.0,
                timeout=(1.0, 2.0),
            )
            log.info("%s: %s released lease %s/%s", self.role, self.identity, self.namespace, self.name)
        except kube.KubeError as exc:
            # It expires by itself after the lease duration.
            log.warning("%s: could not release lease %s/%s: %s", self.role, self.namespace, self.name, exc.message)

    def ready_problems(self) -> dict[str, str]:
        """For /readyz: ready when leading or a standby that reaches the API."""
        if self.connected:
            return {}
        return {"kubernetes": self.last_error or "lease not read yet"}


def leader_elector_for(*, role: str, name: str) -> LeaderElector | None:
    """The elector for a role when K8X_LEADER_ELECTION is on, else None (embedded
    mode runs one process of each role and needs none)."""
    if not settings.K8X_LEADER_ELECTION:
        LEADER.labels(role=role).set(1)
        return None
    return LeaderElector(role=role, name=name)


class Actor(Protocol):
    """What a process does while it leads (e.g. ``k8x_core.watch.Watcher``)."""

    def start(self) -> None: ...

    def step(self) -> object: ...

    def stop(self) -> None: ...


def leader_loop(
    *,
    elector: LeaderElector | None,
    actor_create: Callable[[], Actor],
    health: ProcessHealth,
    stopping: threading.Event,
    standby_wait: float = 0.2,
) -> None:
    """Step an actor while this process leads (always, without an elector), until
    ``stopping``. Leadership gained: a fresh actor is created and started. Lost: the
    actor is stopped at once, from the elector's thread too (it may be inside a step),
    and the process waits as a standby, trying again every retry period. On the way
    out the Lease is released."""
    current: list[Actor] = []

    def stop_acting() -> None:
        while current:
            current.pop().stop()

    if elector is not None:
        elector.on_stop_leading.append(stop_acting)
        health.ready_check = elector.ready_problems
        elector.start()
    try:
        while not stopping.is_set():
            health.beat()
            if elector is None or elector.is_leader():
                if not current:
                    fresh = actor_create()
                    fresh.start()
                    current.append(fresh)
                # The elector's thread may have emptied the list since.
                acting = current[0] if current else None
                if acting is not None:
                    acting.step()
                # Checked after the step too: a step that outlived the renew deadline
                # must not be followed by another.
                if elector is not None and not elector.is_leader():
                    stop_acting()
            else:
                stop_acting()
                stopping.wait(standby_wait)
    finally:
        stop_acting()
        if elector is not None:
            elector.stop(release=True)
