"""Lists and status answers never load run logs: the runs list, the correlation
page, ``GET /api/runs/<id>`` and ``GET /api/correlations/<cid>`` run no query that
touches the log table, while the run page and the log endpoint do read it."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from k8x_core.models import RunLog
from tests.console.conftest import RUN_LOG, World, client_for

LOG_TABLE = RunLog._meta.db_table


def queries_of(world: World, path: str) -> list[str]:
    client = client_for(world.user)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return [q["sql"] for q in captured.captured_queries]


def test_lists_and_status_never_read_logs(world: World) -> None:
    for path in (
        reverse("console:run_list"),
        reverse("console:correlation_detail", args=["flow-acme"]),
        f"/api/runs/{world.run.pk}",
        "/api/correlations/flow-acme",
    ):
        sql = queries_of(world, path)
        assert sql, path
        touching = [q for q in sql if LOG_TABLE in q]
        assert touching == [], (path, touching)


def test_run_page_and_log_endpoint_read_the_chunks(world: World) -> None:
    # The same check sees the log table when it is read: the test above can fail.
    for path in (reverse("console:run_detail", args=[world.run.pk]), f"/api/runs/{world.run.pk}/log"):
        sql = queries_of(world, path)
        assert any(LOG_TABLE in q for q in sql), path
    response = client_for(world.user).get(f"/api/runs/{world.run.pk}/log")
    assert response.content.decode() == RUN_LOG
