"""The election's pure rules: what to write given the Lease and now (lease_decide),
and whether a holder may still act (leader_acting)."""

from __future__ import annotations

from datetime import UTC, datetime

from k8x_core.process.leader import (
    LeaseAction,
    LeaseDecision,
    LeaseRecord,
    leader_acting,
    lease_decide,
    lease_timings,
)

WALL = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)


def decide(
    current: LeaseRecord | None, *, now: float, observed: LeaseRecord | None = None, observed_at: float = 0.0
) -> LeaseDecision:
    return lease_decide(
        current=current,
        identity="me",
        now=now,
        wall_now=WALL,
        observed=observed,
        observed_at=observed_at,
        duration_seconds=15,
    )


def test_no_lease_is_created_held_by_me() -> None:
    d = decide(None, now=100.0)
    assert d.action == LeaseAction.CREATE
    assert d.record == LeaseRecord(
        holder="me",
        duration_seconds=15,
        acquire_time="2026-11-27T12:00:00.123456Z",
        renew_time="2026-11-27T12:00:00.123456Z",
        transitions=0,
    )


def test_my_lease_is_renewed_keeping_acquire_time_and_transitions() -> None:
    mine = LeaseRecord(holder="me", duration_seconds=15, acquire_time="A", renew_time="R", transitions=3)
    d = decide(mine, now=100.0, observed=mine, observed_at=50.0)
    assert d.action == LeaseAction.RENEW
    assert d.record is not None
    assert (d.record.holder, d.record.acquire_time, d.record.transitions) == ("me", "A", 3)
    assert d.record.renew_time == "2026-11-27T12:00:00.123456Z"


def test_a_held_lease_is_waited_for_until_unchanged_for_its_duration_by_my_clock() -> None:
    other = LeaseRecord(holder="other", duration_seconds=10, renew_time="R1", transitions=2)
    # First seen now: it counts from now, whatever renewTime says (clocks differ between machines).
    d = decide(other, now=100.0)
    assert (d.action, d.observed, d.observed_at) == (LeaseAction.WAIT, other, 100.0)
    # Unchanged for less than its duration: still wait.
    d = decide(other, now=109.9, observed=d.observed, observed_at=d.observed_at)
    assert d.action == LeaseAction.WAIT
    # Unchanged for the holder's duration (10 s, not mine 15 s): take it over.
    d = decide(other, now=110.0, observed=d.observed, observed_at=d.observed_at)
    assert d.action == LeaseAction.ACQUIRE
    assert d.record is not None
    assert (d.record.holder, d.record.transitions, d.record.duration_seconds) == ("me", 3, 15)


def test_a_renewal_seen_restarts_the_wait() -> None:
    first = LeaseRecord(holder="other", duration_seconds=10, renew_time="R1")
    renewed = LeaseRecord(holder="other", duration_seconds=10, renew_time="R2")
    d = decide(first, now=100.0)
    d = decide(renewed, now=108.0, observed=d.observed, observed_at=d.observed_at)
    assert (d.action, d.observed_at) == (LeaseAction.WAIT, 108.0)
    d = decide(renewed, now=117.9, observed=d.observed, observed_at=d.observed_at)
    assert d.action == LeaseAction.WAIT
    d = decide(renewed, now=118.0, observed=d.observed, observed_at=d.observed_at)
    assert d.action == LeaseAction.ACQUIRE


def test_a_released_lease_is_taken_at_once() -> None:
    released = LeaseRecord(holder="", duration_seconds=1, renew_time="R", transitions=4)
    d = decide(released, now=100.0)
    assert d.action == LeaseAction.ACQUIRE
    assert d.record is not None
    assert (d.record.holder, d.record.transitions) == ("me", 5)


def test_spec_round_trip() -> None:
    spec = {
        "holderIdentity": "pod-1",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-27T12:00:00.000000Z",
        "renewTime": "2026-11-27T12:00:05.000000Z",
        "leaseTransitions": 2,
    }
    assert LeaseRecord.from_spec(spec).to_spec() == spec
    assert LeaseRecord.from_spec({}) == LeaseRecord(holder="", duration_seconds=0)


def test_a_holder_acts_only_within_the_renew_deadline_of_its_last_renewal() -> None:
    assert not leader_acting(renewed_at=None, now=100.0, renew_deadline=10.0)
    assert leader_acting(renewed_at=100.0, now=109.99, renew_deadline=10.0)
    assert not leader_acting(renewed_at=100.0, now=110.0, renew_deadline=10.0)


def test_a_holder_stops_acting_before_anyone_can_take_over() -> None:
    # client-go's defaults, scaled from the lease duration.
    assert lease_timings(15) == (10.0, 2.0)
    for duration in (1, 4, 15, 60):
        renew_deadline, retry = lease_timings(duration)
        assert 0 < retry < renew_deadline < duration
        # A renewal that started at t=0 is seen by others at t>=0: they take over at
        # t >= duration, while the holder stopped acting at t = renew_deadline.
        renewal_started = 0.0
        assert not leader_acting(renewed_at=renewal_started, now=renew_deadline, renew_deadline=renew_deadline)
        seen = LeaseRecord(holder="old", duration_seconds=duration, renew_time="R")
        d = lease_decide(
            current=seen,
            identity="new",
            now=renew_deadline,
            wall_now=WALL,
            observed=seen,
            observed_at=renewal_started,
            duration_seconds=duration,
        )
        assert d.action == LeaseAction.WAIT
