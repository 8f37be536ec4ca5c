"""deploy/helm/pod_relay.py carries bytes both ways between a listener and a
loopback target, and refuses a malformed port pair by name."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "deploy" / "helm"))
# A script, not a package: imported from its directory.
import pod_relay

from tests.ports import free_port


def test_port_pair_parses_and_names_a_bad_one() -> None:
    assert pod_relay.port_pair("55432:5432") == (55432, 5432)
    with pytest.raises(argparse.ArgumentTypeError, match="'9094' is not LISTEN_PORT:TARGET_PORT"):
        pod_relay.port_pair("9094")


def test_relay_carries_a_conversation_both_ways() -> None:
    async def scenario() -> list[bytes]:
        async def upper_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()

        target = await asyncio.start_server(upper_echo, "127.0.0.1", 0, limit=1 << 20)
        target_port = target.sockets[0].getsockname()[1]
        listen_port = free_port()
        relay = asyncio.create_task(pod_relay.relay_run(bind="127.0.0.1", pairs=[(listen_port, target_port)]))
        for _ in range(50):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", listen_port, limit=1 << 20)
                break
            except OSError:
                await asyncio.sleep(0.05)
        replies = []
        for line in (b"hello\n", b"x" * 200_000 + b"\n"):
            writer.write(line)
            await writer.drain()
            replies.append(await asyncio.wait_for(reader.readline(), timeout=5))
        writer.close()
        relay.cancel()
        target.close()
        return replies

    replies = asyncio.run(scenario())
    assert replies == [b"HELLO\n", b"X" * 200_000 + b"\n"]
