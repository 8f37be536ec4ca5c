"""HTTP event bridge throughput vs producing straight to Kafka, on this
machine (real daphne, Kafka, PostgreSQL, Redis).

Every accepted event was acknowledged by the broker (acks=all, idempotent)
before its 202, so the physical limit is the producer itself:

1. kafka, one call of N events: kafka_produce_events with the whole list
   (one wait for all acknowledgements) — the ceiling.
2. kafka, one event per call: the same, waiting for each acknowledgement
   (what one HTTP request does), sequentially — the latency floor.
3. HTTP single events, C concurrent clients: POST /api/events (structured).
4. HTTP batch of 100 events per request, C concurrent clients.

    DATABASE_URL=postgres://k8x:k8x@127.0.0.1:55432/k8x_bench python bench/bench_bridge.py [N] [C]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "k8x_core.settings")
os.environ.setdefault("DATABASE_URL", "postgres://k8x:k8x@127.0.0.1:55432/k8x_bench")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("SECRET_KEY", "bench-" + uuid.uuid4().hex * 2)
os.environ.setdefault("K8X_RATE_LIMIT_PER_MINUTE", "100000000")
if "K8X_SECRETS_KEY" not in os.environ:
    from cryptography.fernet import Fernet

    os.environ["K8X_SECRETS_KEY"] = Fernet.generate_key().decode()

import django  # noqa: E402
import requests  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from bench_hub import ensure_database  # noqa: E402


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
        "data": {"i": i, "pad": "x" * 200},
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    topic = f"bench.bridge.{uuid.uuid4().hex[:8]}"
    os.environ["K8X_EVENTS_TOPIC"] = topic
    ensure_database()
    django.setup()
    from django.core.management import call_command

    from k8x_core.apikeys import apikey_create
    from k8x_core.kafka import kafka_produce_events
    from k8x_core.projects import project_ensure

    call_command("migrate", verbosity=0)
    project = project_ensure(slug="bench")[0]
    key = apikey_create(project=project, name=f"bench-{uuid.uuid4().hex[:6]}")[1]

    rows = []
    t = time.perf_counter()
    kafka_produce_events([event(i) for i in range(n)])
    rows.append(("kafka, one call of N events", n, time.perf_counter() - t))
    m = min(n, 500)
    t = time.perf_counter()
    for i in range(m):
        kafka_produce_events([event(i)])
    rows.append(("kafka, one event per call (sequential)", m, time.perf_counter() - t))

    port = free_port()
    log = open(f"/tmp/bench_bridge_daphne_{port}.log", "w")  # noqa: SIM115, S108 - lives as long as the server
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "k8x_core.asgi:application"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/events"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"daphne exited; see {log.name}")
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        headers = {"X-API-Key": key, "Content-Type": "application/cloudevents+json"}
        session_local = requests.Session()

        def post_one(i: int) -> int:
            return session_local.post(url, data=json.dumps(event(i)), headers=headers, timeout=30).status_code

        t = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            codes = list(pool.map(post_one, range(n)))
        rows.append((f"HTTP single events, {concurrency} clients", codes.count(202), time.perf_counter() - t))
        assert codes.count(202) == n, {c: codes.count(c) for c in set(codes)}

        batch_headers = {"X-API-Key": key, "Content-Type": "application/cloudevents-batch+json"}

        def post_batch(b: int) -> int:
            body = json.dumps([event(b * 100 + i) for i in range(100)])
            resp = session_local.post(url, data=body, headers=batch_headers, timeout=30)
            return 100 if resp.status_code == 202 else 0

        t = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            accepted = sum(pool.map(post_batch, range(max(n // 100, 1))))
        rows.append((f"HTTP batches of 100, {concurrency} clients", accepted, time.perf_counter() - t))
    finally:
        server.terminate()
        server.wait(timeout=30)

    ceiling = rows[0][1] / rows[0][2]
    print(f"{'path':45} {'events':>7} {'seconds':>8} {'events/s':>9} {'vs ceiling':>10}")
    for name, count, seconds in rows:
        rate = count / seconds
        print(f"{name:45} {count:7d} {seconds:8.2f} {rate:9.0f} {rate / ceiling:10.2%}")
    print(f"(topic {topic}; every 202 was acknowledged by the broker with acks=all)")


if __name__ == "__main__":
    main()
