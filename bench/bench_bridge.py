"""HTTP event bridge throughput and event -> 202 latency vs producing straight
to Kafka, on this machine (real daphne, Kafka, PostgreSQL, Redis).

Every accepted event was acknowledged by the broker (acks=all, idempotent)
before its 202, so the physical limit is the producer itself:

1. kafka, one call of N events: kafka_produce_events with the whole list
   (one wait for all acknowledgements) -- the ceiling ("vs ceiling").
2. kafka, one event per call, sequential: what one HTTP request waits for.
3. kafka, one event per call, C concurrent (asyncio): the single-event limit
   with C callers, without HTTP ("vs 1-event").
4. HTTP single events, C keep-alive clients, through k8x.asgi as
   deployed (Django's whole middleware chain, unless the fast path is wired).
5. The same through the event bridge's fast path (console.api.fastpath) --
   only when k8x.asgi does not wire it itself (then row 4 is it).
6. HTTP batches of 100 events.

The HTTP load comes from the leanest client available: ``wrk`` (Debian
package) with a Lua script, else a raw http.client keep-alive loop in threads.
Its CPU is shown, because on 2 cores the client competes with the server.
Latency is event sent -> 202 received. The end offsets of the topic are
checked against the number of 202s (nothing accepted is missing).

    python bench/bench_bridge.py [N] [C] [SECONDS]     (defaults 3000 16 10)
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from _common import REPO, django_ready

PAD = "x" * 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def event(i: int) -> dict:
    return {
        "specversion": "1.0",
        "id": f"b-{uuid.uuid4().hex}",
        "source": "/bench",
        "type": "com.acme.bench",
        "subject": f"s{i % 64}",
        "data": {"i": i, "pad": PAD},
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    path: str
    events: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    server_cpu_ms: float | None = None  # daphne CPU per event
    client_cpu: float | None = None  # client CPU seconds per wall second


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000


# --- clients -----------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("BENCH_CT")
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
local pad = string.rep("x", 200)
local batch = tonumber(os.getenv("BENCH_BATCH"))
local n = 0
local function one()
  n = n + 1
  return '{"specversion":"1.0","id":"w-' .. n .. '-' .. math.random(1e9) .. '-' .. math.random(1e9) ..
    '","source":"/bench","type":"com.acme.bench","subject":"s1","data":{"i":' .. n .. ',"pad":"' .. pad .. '"}}'
end
request = function()
  if batch == 0 then return wrk.format(nil, nil, nil, one()) end
  local items = {}
  for i = 1, batch do items[i] = one() end
  return wrk.format(nil, nil, nil, "[" .. table.concat(items, ",") .. "]")
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %f %f\\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def load_wrk(url: str, key: str, clients: int, seconds: float, batch: int) -> tuple[int, float, float, float, float]:
    """(requests answered 202, seconds, p50 ms, p99 ms, client CPU s per s) with wrk."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT)
    content_type = "application/cloudevents-batch+json" if batch else "application/cloudevents+json"
    script = ["-s", f.name, url]
    env = {**os.environ, "BENCH_KEY": key, "BENCH_CT": content_type, "BENCH_BATCH": str(batch)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        ["wrk", f"-t{min(2, clients)}", f"-c{clients}", f"-d{max(round(seconds), 1)}s", "--timeout", "30s", *script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(f.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)", out)
    if not match:
        raise SystemExit(f"wrk printed no result:\n{out}")
    requests, bad_status, socket_errors = (int(match.group(i)) for i in (1, 2, 3))
    if bad_status or socket_errors:
        raise SystemExit(f"{bad_status} answers were not 2xx, {socket_errors} socket errors:\n{out}")
    client_cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / wall
    return requests, float(seconds), float(match.group(4)), float(match.group(5)), client_cpu


def load_python(url: str, key: str, clients: int, seconds: float, batch: int) -> tuple[int, float, float, float, float]:
    """The same with raw http.client keep-alive connections in threads."""
    host, port_path = url.split("//", 1)[1].split(":", 1)
    port, path = port_path.split("/", 1)
    content_type = "application/cloudevents-batch+json" if batch else "application/cloudevents+json"
    headers = {"Content-Type": content_type, "X-API-Key": key}
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: list[float] = []
        i = 0
        while time.monotonic() < deadline:
            i += 1
            body = json.dumps([event(i) for _ in range(batch)] if batch else event(i))
            sent = time.perf_counter()
            conn.request("POST", "/" + path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 202:
                with lock:
                    failures.append(resp.status)
            mine.append(time.perf_counter() - sent)
        with lock:
            latencies.extend(mine)

    before = time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} answers were not 202: {sorted(set(failures))}")
    client_cpu = (time.process_time() - before) / wall
    return len(latencies), wall, percentile(latencies, 0.5), percentile(latencies, 0.99), client_cpu


# --- the server ---------------------------------------------------------------------


class Daphne:
    def __init__(self, app: str) -> None:
        self.port = free_port()
        self.log = open(f"/tmp/bench_bridge_daphne_{self.port}.log", "w")  # noqa: SIM115, S108
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), app],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.url = f"http://127.0.0.1:{self.port}/api/events"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"daphne exited; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"daphne did not answer; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # Daphne waits for open keep-alive connections; the numbers are in.
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


def http_row(name: str, server: Daphne, key: str, clients: int, seconds: float, batch: int = 0) -> Row:
    load = load_wrk if shutil.which("wrk") else load_python
    load(server.url, key, clients, 1.0, batch)  # warm-up: the key is cached, connections are open
    before = cpu_seconds(server.proc.pid)
    requests, wall, p50, p99, client_cpu = load(server.url, key, clients, seconds, batch)
    events = requests * max(batch, 1)
    server_ms = (cpu_seconds(server.proc.pid) - before) * 1000 / events
    return Row(name, events, wall, p50, p99, server_ms, client_cpu)


# --- main ---------------------------------------------------------------------------


def end_offsets(topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition
    from django.conf import settings

    consumer = Consumer({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "group.id": f"bench-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
    topic = f"bench.bridge.{uuid.uuid4().hex[:8]}"
    os.environ["K8X_EVENTS_TOPIC"] = topic
    django_ready()
    from bridge_asgi import wired

    from k8x_core.events.apikeys import apikey_create
    from k8x_core.kafka import kafka_produce_events
    from k8x_core.kafka.producer import kafka_produce_events_async
    from k8x_core.projects import project_ensure

    project = project_ensure(slug="bench")[0]
    key = apikey_create(project=project, name=f"bench-{uuid.uuid4().hex[:6]}")[1]

    rows: list[Row] = []
    kafka_produce_events([event(0)])  # connected, topic created
    t = time.perf_counter()
    kafka_produce_events([event(i) for i in range(n)])
    rows.append(Row("kafka, one call of N events (ceiling)", n, time.perf_counter() - t))

    m = min(n, 1000)
    latencies = []
    t = time.perf_counter()
    for i in range(m):
        sent = time.perf_counter()
        kafka_produce_events([event(i)])
        latencies.append(time.perf_counter() - sent)
    rows.append(
        Row(
            "kafka, one event per call, sequential",
            m,
            time.perf_counter() - t,
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
        )
    )

    async def concurrent() -> list[float]:
        queue = list(range(n))
        measured: list[float] = []

        async def caller() -> None:
            while queue:
                i = queue.pop()
                sent = time.perf_counter()
                await kafka_produce_events_async([event(i)])
                measured.append(time.perf_counter() - sent)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return measured

    t = time.perf_counter()
    latencies = asyncio.run(concurrent())
    rows.append(
        Row(
            f"kafka, one event per call, {concurrency} concurrent",
            n,
            time.perf_counter() - t,
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
        )
    )

    from k8x.asgi import application

    fast_wired = wired(application)
    deployed = Daphne("k8x.asgi:application")
    try:
        label = "fast path" if fast_wired else "Django chain"
        rows.append(
            http_row(f"HTTP single events, {concurrency} clients ({label})", deployed, key, concurrency, seconds)
        )
        rows.append(http_row(f"HTTP single events, 1 client ({label})", deployed, key, 1, seconds))
        rows.append(http_row(f"HTTP batches of 100, {concurrency} clients", deployed, key, concurrency, seconds, 100))
    finally:
        deployed.stop()
    if not fast_wired:
        fast = Daphne("bench.bridge_asgi:application")
        try:
            rows.append(
                http_row(f"HTTP single events, {concurrency} clients (fast path)", fast, key, concurrency, seconds)
            )
            rows.append(http_row("HTTP single events, 1 client (fast path)", fast, key, 1, seconds))
        finally:
            fast.stop()

    # Each HTTP row also ran a 1 s warm-up whose events are in the topic too.
    produced = end_offsets(topic)
    counted = 1 + sum(r.events for r in rows)
    assert produced >= counted, f"topic holds {produced} events, fewer than the {counted} acknowledged"

    ceiling = rows[0].events / rows[0].seconds
    single = rows[2].events / rows[2].seconds
    client = "wrk" if shutil.which("wrk") else "python http.client threads"

    def fmt(value: float | None, spec: str) -> str:
        width = int(spec.split(".")[0].rstrip("%f"))
        return format(value, spec) if value is not None else "-".rjust(width)

    print(
        f"{'path':52} {'events':>7} {'seconds':>7} {'events/s':>9} {'vs ceiling':>10} {'vs 1-event':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'srv CPU ms/ev':>13} {'client CPU':>10}"
    )
    for r in rows:
        rate = r.events / r.seconds
        print(
            f"{r.path:52} {r.events:7d} {r.seconds:7.2f} {rate:9.0f} {rate / ceiling:10.2%} {rate / single:10.2%} "
            f"{fmt(r.p50_ms, '7.1f')} {fmt(r.p99_ms, '7.1f')} {fmt(r.server_cpu_ms, '13.2f')} "
            f"{fmt(r.client_cpu, '10.0%')}"
        )
    print(
        f"(topic {topic}: {produced} events; every 202 was acknowledged by the broker with acks=all; "
        f"HTTP load from {client}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
