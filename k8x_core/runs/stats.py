"""Run statistics for the console dashboard."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import TruncDate

from k8x_core.models import Run, RunStatus

FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT)


@dataclass(frozen=True)
class ServiceStat:
    service_id: int
    project: str
    name: str
    runs: int
    failures: int
    mean_seconds: float | None


@dataclass(frozen=True)
class DayStat:
    day: date
    counts: dict[str, int]
    mean_seconds: float | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class DashboardStats:
    last_24h: dict[str, int]
    recent_failures: list[Run]
    slowest: list[ServiceStat]
    most_failing: list[ServiceStat]
    days: list[DayStat] = field(default_factory=list)

    @property
    def total_24h(self) -> int:
        return sum(self.last_24h.values())


_DURATION = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def dashboard_stats(*, project_ids: Iterable[int] | None, now: datetime, days: int = 7) -> DashboardStats:
    """Runs of the given projects (None: all) in the last 24 h and ``days`` days up to ``now``."""
    runs = Run.objects.all()
    if project_ids is not None:
        runs = runs.filter(service__project_id__in=list(project_ids))

    day_rows = runs.filter(created_at__gte=now - timedelta(hours=24)).values("status").annotate(n=Count("pk"))
    last_24h = {s.value: 0 for s in RunStatus}
    for row in day_rows:
        last_24h[row["status"]] = row["n"]

    recent_failures = list(
        runs.filter(status__in=FAILED, created_at__gte=now - timedelta(days=days))
        .select_related("service__project")
        .order_by("-created_at")[:10]
    )

    window = runs.filter(created_at__gte=now - timedelta(days=days))
    per_service = (
        window.values("service_id", "service__name", "service__project__slug")
        .annotate(
            n=Count("pk"),
            failures=Count("pk", filter=Q(status__in=FAILED)),
            mean=Avg(_DURATION, filter=Q(finished_at__isnull=False, started_at__isnull=False)),
        )
        .order_by()
    )
    stats = [
        ServiceStat(
            service_id=row["service_id"],
            project=row["service__project__slug"],
            name=row["service__name"],
            runs=row["n"],
            failures=row["failures"],
            mean_seconds=_seconds(row["mean"]),
        )
        for row in per_service
    ]
    slowest = sorted((s for s in stats if s.mean_seconds is not None), key=lambda s: -(s.mean_seconds or 0))[:5]
    most_failing = sorted((s for s in stats if s.failures), key=lambda s: (-s.failures, s.name))[:5]

    start_day = (now - timedelta(days=days - 1)).date()
    recent = runs.filter(created_at__date__gte=start_day, created_at__lte=now).annotate(day=TruncDate("created_at"))
    by_day: dict[date, dict[str, int]] = {start_day + timedelta(days=i): {} for i in range(days)}
    for row in recent.values("day", "status").annotate(n=Count("pk")).order_by():
        by_day.setdefault(row["day"], {})[row["status"]] = row["n"]
    means = {
        row["day"]: _seconds(row["mean"])
        for row in recent.filter(finished_at__isnull=False, started_at__isnull=False)
        .values("day")
        .annotate(mean=Avg(_DURATION))
        .order_by()
    }
    day_stats = [DayStat(day=d, counts=by_day[d], mean_seconds=means.get(d)) for d in sorted(by_day)]
    return DashboardStats(
        last_24h=last_24h, recent_failures=recent_failures, slowest=slowest, most_failing=most_failing, days=day_stats
    )
