"""TCP relay from the local cluster's bridge to services on loopback.

PostgreSQL and Kafka listen on 127.0.0.1 only (deploy/services/); pods reach
this machine at the bridge address (10.244.0.1). `make deploy` runs this
relay so that the in-cluster K8X reaches them there:

    python deploy/helm/pod_relay.py --bind 10.244.0.1 55432:55432 9094:9094

Each LISTEN:TARGET pair accepts on BIND:LISTEN and connects to
127.0.0.1:TARGET. Kafka needs its own listener for this (the `PODS` listener
on 127.0.0.1:9094 advertises 10.244.0.1:9094), else clients would follow
the broker's advertised 127.0.0.1 address from inside the pod.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

log = logging.getLogger("k8x.pod_relay")
CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


def relay_handler(target_port: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", target_port), timeout=5
            )
        except (OSError, TimeoutError) as exc:
            log.warning("127.0.0.1:%d refused a relayed connection: %s", target_port, exc)
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer), return_exceptions=True
        )

    return handle


def port_pair(text: str) -> tuple[int, int]:
    listen, sep, target = text.partition(":")
    if not sep or not listen.isdigit() or not target.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not LISTEN_PORT:TARGET_PORT")
    return int(listen), int(target)


async def relay_run(*, bind: str, pairs: list[tuple[int, int]]) -> None:
    servers = []
    for listen, target in pairs:
        server = await asyncio.start_server(relay_handler(target), bind, listen, reuse_address=True)
        servers.append(server)
        log.info("relaying %s:%d -> 127.0.0.1:%d", bind, listen, target)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", required=True, help="address to listen on (the cluster bridge's)")
    parser.add_argument("pairs", nargs="+", type=port_pair, help="LISTEN_PORT:TARGET_PORT")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(relay_run(bind=args.bind, pairs=args.pairs))


if __name__ == "__main__":
    main()
