"""The dashboard: runs in the last 24 h, failures, slow and failing services, a 7-day chart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from console.views.common import request_user
from k8x_core.projects import projects_visible
from k8x_core.runs.stats import DayStat, dashboard_stats

CHART_STATUSES = ["succeeded", "failed", "timed_out", "cancelled", "active"]
ACTIVE = ("queued", "starting", "running")


@dataclass
class Bar:
    status: str
    x: float
    y: float
    height: float
    width: float
    count: int


def chart(days: list[DayStat], *, width: int = 640, height: int = 220) -> dict[str, Any]:
    """Geometry of a stacked bar chart (runs by status) with a mean-duration line, for an inline SVG."""
    left, right, top, bottom = 40, 50, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(days), 1)
    slot = plot_w / n
    bar_w = slot * 0.6
    max_total = max([d.total for d in days] + [1])
    max_mean: float = max([d.mean_seconds or 0 for d in days] + [0]) or 1.0
    bars: list[Bar] = []
    labels: list[dict[str, Any]] = []
    points: list[tuple[float, float]] = []
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y: float = top + plot_h
        grouped = {s: day.counts.get(s, 0) for s in CHART_STATUSES if s != "active"}
        grouped["active"] = sum(day.counts.get(s, 0) for s in ACTIVE)
        for status in CHART_STATUSES:
            count = grouped[status]
            if not count:
                continue
            h = plot_h * count / max_total
            y -= h
            bars.append(
                Bar(status=status, x=round(x, 1), y=round(y, 1), height=round(h, 1), width=round(bar_w, 1), count=count)
            )
        labels.append(
            {"x": round(left + i * slot + slot / 2, 1), "text": day.day.strftime("%a %d"), "total": day.total}
        )
        if day.mean_seconds is not None:
            points.append(
                (round(left + i * slot + slot / 2, 1), round(top + plot_h - plot_h * day.mean_seconds / max_mean, 1))
            )
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "line": " ".join(f"{x},{y}" for x, y in points),
        "points": points,
        "max_total": max_total,
        "max_mean": max_mean,
        "baseline": top + plot_h,
        "top": top,
        "left": left,
        "right_x": width - right,
        "label_y": height - 10,
    }


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    now = timezone.now()
    project_ids = None if user.is_superuser else list(projects_visible(user=user).values_list("pk", flat=True))
    stats = dashboard_stats(project_ids=project_ids, now=now)
    return render(
        request,
        "console/dashboard.html",
        {"stats": stats, "chart": chart(stats.days), "statuses": CHART_STATUSES, "now": now},
    )
