"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import contextlib

from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from k8x_core import metrics as k8x_metrics


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database and Redis answer; names what does not."""
    problems: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        problems["database"] = str(exc).strip()[:200]
    try:
        k8x_metrics.redis_client().ping()
    except RedisError as exc:
        problems["redis"] = str(exc)[:200]
    return JsonResponse({"ready": not problems, "problems": problems}, status=503 if problems else 200)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    k8x_metrics.collect_database_gauges()
    # Redis away: the other gauges are still worth serving (/readyz says what is wrong).
    with contextlib.suppress(RedisError):
        k8x_metrics.collect_queue_depth()
    return HttpResponse(generate_latest(k8x_metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST)
