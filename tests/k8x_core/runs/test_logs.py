"""The stored log: RunLog chunks appended per flush, replaced by the final log, the
cap enforced on their sum, and the migration that moved Run.log into chunks."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from k8x_core.models import Project, Run, RunLog, RunStatus, Service, TriggerKind
from k8x_core.runs.logs import run_log_append, run_log_final, run_log_size, run_log_store, run_log_text
from k8x_core.runs.transitions import run_transition
from k8x_core.watch.watcher import Watcher

LOG_TABLE = RunLog._meta.db_table


def make_run(status: RunStatus = RunStatus.RUNNING) -> Run:
    project = Project.objects.create(slug=f"l{uuid.uuid4().hex[:8]}")
    service = Service.objects.create(project=project, name="svc", image="localhost:5000/k8x/busybox:1")
    return Run.objects.create(service=service, trigger_kind=TriggerKind.MANUAL, status=status)


@pytest.mark.django_db
def test_append_inserts_and_never_rewrites_what_is_stored() -> None:
    run = make_run()
    assert run_log_append(run_id=run.pk, text="2026-01-01T00:00:01Z a\n")
    with CaptureQueriesContext(connection) as captured:
        assert run_log_append(run_id=run.pk, text="2026-01-01T00:00:02Z b\n")
    sql = [q["sql"] for q in captured.captured_queries]
    # Lock the run row, insert one chunk; no statement reads or updates stored text.
    assert sum(q.startswith(f'INSERT INTO "{LOG_TABLE}"') for q in sql) == 1
    assert not any(q.startswith("UPDATE") for q in sql), sql
    assert not any(q.startswith("SELECT") and LOG_TABLE in q for q in sql), sql
    assert run_log_text(run.pk) == "2026-01-01T00:00:01Z a\n2026-01-01T00:00:02Z b\n"
    assert run_log_size(run.pk) == len(run_log_text(run.pk).encode())


@pytest.mark.django_db
def test_append_stops_when_the_run_is_over_and_the_final_log_replaces_chunks() -> None:
    run = make_run()
    for i in range(5):
        run_log_append(run_id=run.pk, text=f"line {i} é\n")
    assert RunLog.objects.filter(run=run).count() == 5
    assert run_transition(run_id=run.pk, to=RunStatus.SUCCEEDED, log_truncated=True)
    run_log_store(run_id=run.pk, lines=["final"] * 100_000)  # 600 kB: several chunks
    assert not run_log_append(run_id=run.pk, text="late line\n")
    assert run_log_text(run.pk) == "final\n" * 100_000
    assert RunLog.objects.filter(run=run).count() > 1
    assert Run.objects.get(pk=run.pk).log_truncated


@pytest.mark.django_db
def test_the_watcher_caps_the_sum_of_chunks(settings: object) -> None:
    settings.K8X_LOG_CAP_BYTES = 1000  # type: ignore[attr-defined]
    run = make_run()
    run_log_append(run_id=run.pk, text="x" * 99 + "\n")  # stored before the watcher started
    watcher = Watcher(follow_logs=False)
    watcher.log_track(str(run.pk))
    assert watcher.log_room(str(run.pk)) == 900
    appended = [watcher.log_append(str(run.pk), [f"{i:03d} " + "y" * 45]) for i in range(30)]
    assert appended.count(False) > 0 and appended[-1] is False
    text = run_log_text(run.pk)
    assert run_log_size(run.pk) <= 1000 and text.endswith("\n")
    assert Run.objects.get(pk=run.pk).log_truncated
    assert watcher.log_room(str(run.pk)) == 0


@pytest.mark.django_db(transaction=True)
def test_migration_turns_each_log_into_one_chunk() -> None:
    executor = MigrationExecutor(connection)
    target = next(key for key in executor.loader.graph.nodes if key[0] == "k8x_core" and key[1].endswith("_runlog"))
    (before,) = [p for p in executor.loader.graph.node_map[target].parents if p.key[0] == "k8x_core"]
    leaves = executor.loader.graph.leaf_nodes("k8x_core")
    executor.migrate([before.key])
    try:
        apps = executor.loader.project_state([before.key]).apps
        project = apps.get_model("k8x_core", "Project").objects.create(slug="migr", namespace="k8x-migr")
        service = apps.get_model("k8x_core", "Service").objects.create(project=project, name="s", image="i")
        OldRun = apps.get_model("k8x_core", "Run")
        with_log = OldRun.objects.create(service=service, trigger_kind="manual", log="héllo\nworld\n")
        without = OldRun.objects.create(service=service, trigger_kind="manual", log="")
        executor = MigrationExecutor(connection)
        executor.migrate([target])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    chunks = list(RunLog.objects.filter(run_id=with_log.pk).values_list("text", "bytes"))
    assert chunks == [("héllo\nworld\n", len("héllo\nworld\n".encode()))]
    assert not RunLog.objects.filter(run_id=without.pk).exists()


@pytest.mark.django_db
def test_the_log_followed_live_stays_when_the_pods_give_less() -> None:
    run = make_run()
    run_log_append(run_id=run.pk, text="2026-01-01T00:00:01Z followed\n")
    # No pod left to read (or a rotated log): the final read has less than what was followed.
    assert run_log_final(run_id=run.pk, namespace="unused", pods=[]) is None
    empty = make_run()
    final = run_log_final(run_id=empty.pk, namespace="unused", pods=[])
    assert final is not None and final.lines == [] and not final.truncated


@pytest.mark.django_db(transaction=True)
def test_an_append_racing_the_final_log_never_survives_it() -> None:
    """The terminal update and the final log are one transaction; an append that
    comes meanwhile waits on the run row and then finds the run over."""
    run = make_run()
    run_log_append(run_id=run.pk, text="followed\n")
    in_final = threading.Event()
    result: list[bool] = []

    def late_append() -> None:
        in_final.wait(10)
        try:
            result.append(run_log_append(run_id=run.pk, text="late\n"))
        finally:
            connection.close()

    appender = threading.Thread(target=late_append)
    appender.start()
    with transaction.atomic():
        assert run_transition(run_id=run.pk, to=RunStatus.SUCCEEDED)
        in_final.set()
        time.sleep(0.5)  # the append is now blocked on the run row
        assert appender.is_alive()
        run_log_store(run_id=run.pk, lines=["final"])
    appender.join(timeout=10)
    assert result == [False]
    assert run_log_text(run.pk) == "final\n"
