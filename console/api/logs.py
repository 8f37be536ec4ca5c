"""``GET /api/runs/<id>/log``: a run's log as text/plain.

While the run is live this is what the watcher has followed so far; once the
run ended it is the stored log of all attempts (it outlives the pods). Same
authentication and visibility as ``GET /api/runs/<id>``."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from console.api.views import _refused, error_response, runs_visible_one
from k8x_core.events.ingest import IngestRefused
from k8x_core.runs.logs import run_log_text


@require_GET
def run_log(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    try:
        row = runs_visible_one(request, run_id).values("pk", "log_truncated", "status").first()
    except IngestRefused as exc:
        return _refused(exc)
    if row is None:
        return error_response(404, f"no run {run_id} visible to you", field="id")
    response = HttpResponse(run_log_text(row["pk"]), content_type="text/plain; charset=utf-8")
    response["X-K8X-Run-Status"] = row["status"]
    response["X-K8X-Log-Truncated"] = "true" if row["log_truncated"] else "false"
    response["Cache-Control"] = "no-store"
    return response
