"""The live log websocket through the real ASGI stack (session auth, origin check) and the real Redis channel layer."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from k8x_core.models import Run, RunStatus
from k8x_core.runs.live import live_publish_log, live_publish_status, run_group
from tests.console.conftest import World

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _short_lived_connections():
    """The consumer's DB calls run in worker threads; persistent connections there would
    outlive the test and block dropping the test database."""
    from django.db import connections

    conn_settings = connections["default"].settings_dict
    old = conn_settings["CONN_MAX_AGE"]
    conn_settings["CONN_MAX_AGE"] = 0
    yield
    conn_settings["CONN_MAX_AGE"] = old


@pytest.fixture(autouse=True)
async def _close_executor_connections(_short_lived_connections: None):
    yield
    # Thread-sensitive sync code ran in asgiref's one executor thread: close its connection there.
    from django.db import connections

    await sync_to_async(connections.close_all)()


def _app():
    from k8x.asgi import application

    return application


def _headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()), (b"origin", b"http://127.0.0.1")]


def _connect(path: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    return WebsocketCommunicator(_app(), path, headers=headers)


async def test_member_gets_snapshot_then_live_lines_once(world: World) -> None:
    headers = await database_sync_to_async(_headers)(world.user)
    comm = _connect(f"/ws/runs/{world.run.pk}/logs/", headers)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    snapshot = await comm.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    assert snapshot["log"] == world.run.log
    assert snapshot["status"]["status"] == "running"

    # The watcher publishes a batch overlapping the snapshot: only the new line comes through.
    await sync_to_async(live_publish_log)(
        run_id=world.run.pk,
        lines=["2026-01-01T00:00:02.000000000Z world", "2026-01-01T00:00:03.5Z third"],
    )
    live = await comm.receive_json_from(timeout=5)
    assert live == {"type": "log", "lines": ["2026-01-01T00:00:03.5Z third"]}

    await sync_to_async(live_publish_log)(run_id=world.run.pk, lines=["2026-01-01T00:00:04Z fourth"])
    assert (await comm.receive_json_from(timeout=5))["lines"] == ["2026-01-01T00:00:04Z fourth"]

    await sync_to_async(live_publish_status)(
        run_id=world.run.pk, project_id=world.acme.pk, service="billing", status="succeeded", exit_code=0, reason=""
    )
    status = await comm.receive_json_from(timeout=5)
    assert status["type"] == "status" and status["status"] == "succeeded" and status["exit_code"] == 0
    await comm.disconnect()


async def test_other_project_member_is_refused(world: World) -> None:
    headers = await database_sync_to_async(_headers)(world.outsider)
    comm = _connect(f"/ws/runs/{world.run.pk}/logs/", headers)
    connected, code = await comm.connect(timeout=5)
    assert not connected
    assert code == 4403
    # Nothing of the run reached the socket.
    assert await comm.receive_nothing(timeout=0.3)


async def test_anonymous_is_refused(world: World) -> None:
    comm = _connect(f"/ws/runs/{world.run.pk}/logs/", [(b"origin", b"http://127.0.0.1")])
    connected, code = await comm.connect(timeout=5)
    assert not connected and code == 4403


async def test_unknown_run_is_refused_like_a_forbidden_one(world: World) -> None:
    headers = await database_sync_to_async(_headers)(world.user)
    comm = _connect(f"/ws/runs/{uuid.uuid4()}/logs/", headers)
    connected, code = await comm.connect(timeout=5)
    assert not connected and code == 4403


async def test_foreign_origin_is_refused(world: World) -> None:
    headers = await database_sync_to_async(_headers)(world.user)
    headers = [h for h in headers if h[0] != b"origin"] + [(b"origin", b"http://evil.example")]
    comm = _connect(f"/ws/runs/{world.run.pk}/logs/", headers)
    connected, _ = await comm.connect(timeout=5)
    assert not connected


async def test_finished_run_sends_stored_log_and_closes(world: World) -> None:
    await database_sync_to_async(Run.objects.filter(pk=world.run.pk).update)(status=RunStatus.SUCCEEDED, exit_code=0)
    headers = await database_sync_to_async(_headers)(world.user)
    comm = _connect(f"/ws/runs/{world.run.pk}/logs/", headers)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    snapshot = await comm.receive_json_from(timeout=5)
    assert snapshot["status"]["status"] == "succeeded" and "hello" in snapshot["log"]
    closed = await comm.receive_output(timeout=5)
    assert closed["type"] == "websocket.close"


async def test_group_name_matches_live_contract(world: World) -> None:
    layer = get_channel_layer()
    assert layer is not None
    assert run_group(world.run.pk) == f"run.{world.run.pk.hex}"
