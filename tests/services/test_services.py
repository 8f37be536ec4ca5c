"""Tests for deploy/services: the real PostgreSQL, Redis and Kafka on loopback.

The session fixture runs ``deploy/services/start.sh all`` (idempotent: a second
call only checks readiness), so these tests work on a fresh machine as well.
The last test stops and restarts Kafka.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.kafka_support import topic_create

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "deploy" / "services"
STATE_DIR = Path(os.environ.get("K8X_STATE_DIR", REPO / ".state"))

DATABASE_URL = "postgres://k8x:k8x@127.0.0.1:55432/k8x"
REDIS_URL = "redis://127.0.0.1:6379/0"
BOOTSTRAP = "127.0.0.1:9092"


def run_script(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [str(SCRIPTS / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def services() -> str:
    return run_script("start.sh", "all")


@pytest.fixture
def admin(services: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": BOOTSTRAP})


@pytest.fixture
def groups(admin: AdminClient) -> Iterator[list[str]]:
    """Consumer group ids a test used; deleted afterwards."""
    used: list[str] = []
    yield used
    if used:
        for fut in admin.delete_consumer_groups(used, request_timeout=30).values():
            fut.result()


@pytest.fixture
def topic(admin: AdminClient) -> Iterator[str]:
    """A fresh 3-partition topic, deleted afterwards."""
    name = f"k8x.test.services.{uuid.uuid4().hex[:12]}"
    # Created and waited for until its metadata shows all partitions (a loaded broker lags).
    topic_create(name, partitions=3)
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


def produce(topic: str, values: list[str]) -> None:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    errors: list[KafkaError] = []
    delivered: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append(val(msg))

    for i, value in enumerate(values):
        producer.produce(topic, key=str(i % 17), value=value, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still in flight after 30s"
    assert errors == []
    assert sorted(delivered) == sorted(values)


def consumer(group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )


def consume(c: Consumer, count: int, deadline_s: float = 60) -> list[Message]:
    out: list[Message] = []
    deadline = time.monotonic() + deadline_s
    while len(out) < count and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        out.append(msg)
    return out


def part(m: Message) -> int:
    p = m.partition()
    assert p is not None
    return p


def off(m: Message) -> int:
    o = m.offset()
    assert o is not None
    return o


def val(m: Message) -> str:
    v = m.value()
    assert isinstance(v, bytes)
    return v.decode()


# ------------------------------------------------------------------ PostgreSQL
def test_start_prints_urls(services: str) -> None:
    assert f"DATABASE_URL={DATABASE_URL}" in services
    assert f"REDIS_URL={REDIS_URL}" in services
    assert f"KAFKA_BOOTSTRAP_SERVERS={BOOTSTRAP}" in services
    # idempotent: a second start finds everything running and starts nothing
    again = run_script("start.sh", "all", timeout=120)
    assert again.count("already running") == 3, again
    status = run_script("status.sh")
    assert re.search(r"^postgres\s+running", status, re.M), status
    assert re.search(r"^redis\s+running", status, re.M), status
    assert re.search(r"^kafka\s+running", status, re.M), status


def test_postgres_login_and_create_database(services: str) -> None:
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), inet_server_addr()::text, inet_server_port(),"
            " current_setting('server_version_num')::int"
        ).fetchone()
        assert row is not None
        user, db, addr, port, version = row
        assert (user, db, port) == ("k8x", "k8x", 55432)
        assert addr.startswith("127.0.0.1")
        assert version >= 150000
        dbname = f"k8x_test_services_{uuid.uuid4().hex[:10]}"
        conn.execute(f'CREATE DATABASE "{dbname}"')
        try:
            with psycopg.connect(f"postgres://k8x:k8x@127.0.0.1:55432/{dbname}") as other:
                other.execute("CREATE TABLE t (id serial PRIMARY KEY, v text NOT NULL)")
                other.execute("INSERT INTO t (v) SELECT 'row ' || g FROM generate_series(1, 100) g")
                count = other.execute("SELECT count(*) FROM t").fetchone()
                assert count == (100,)
        finally:
            conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        assert exists is None


def test_postgres_checks_passwords(services: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect("postgres://k8x:wrong@127.0.0.1:55432/k8x", connect_timeout=5)


# ----------------------------------------------------------------------- Redis
def test_redis_ping_set_get(services: str) -> None:
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    assert r.ping() is True
    key = f"k8x:test:services:{uuid.uuid4().hex}"
    try:
        assert r.set(key, "héllo", ex=60) is True
        assert r.get(key) == "héllo".encode()
        assert 0 < r.ttl(key) <= 60
        assert r.incr(key + ":n") == 1
        assert r.incr(key + ":n") == 2
    finally:
        r.delete(key, key + ":n")
    assert r.get(key) is None
    config = r.config_get("bind") | r.config_get("port") | r.config_get("dir")
    assert config["bind"] == "127.0.0.1"
    assert config["port"] == "6379"
    assert Path(str(config["dir"])).resolve() == (STATE_DIR / "redis").resolve()


def test_services_listen_on_loopback_only(services: str) -> None:
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    seen: dict[str, set[str]] = {}
    for line in out.splitlines():
        local = line.split()[3]
        host, _, port = local.rpartition(":")
        if port in {"55432", "6379", "9092", "9093"}:
            seen.setdefault(port, set()).add(host)
    assert set(seen) == {"55432", "6379", "9092", "9093"}, out
    for port, hosts in seen.items():
        assert hosts <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, (port, hosts)


# ----------------------------------------------------------------------- Kafka
@pytest.mark.kafka
def test_kafka_project_topics_exist(admin: AdminClient) -> None:
    md = admin.list_topics(timeout=10)
    assert len(md.topics["k8x.events"].partitions) == 4
    assert len(md.topics["k8x.events.dlq"].partitions) == 1
    assert [b.host for b in md.brokers.values()] == ["127.0.0.1"]
    assert [b.port for b in md.brokers.values()] == [9092]


@pytest.mark.kafka
def test_kafka_consumer_group_resumes_after_committed_offsets(
    admin: AdminClient, topic: str, groups: list[str]
) -> None:
    md = admin.list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 3

    values = [f"msg-{i:04d}" for i in range(1000)]
    produce(topic, values)

    # all 1000 landed, spread over the three partitions
    probe = consumer(f"probe-{uuid.uuid4().hex}")
    ends = [probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(3)]
    probe.close()
    assert sum(high - low for low, high in ends) == 1000
    assert all(high > 0 for _, high in ends), ends

    group = f"k8x-test-{uuid.uuid4().hex[:8]}"
    groups.append(group)
    first = consumer(group)
    first.subscribe([topic])
    got_first = consume(first, 600)
    assert len(got_first) == 600
    # commit exactly what was processed (librdkafka has prefetched more)
    last: dict[int, int] = {}
    for m in got_first:
        assert off(m) > last.get(part(m), -1), "offsets must increase within a partition"
        last[part(m)] = off(m)
    to_commit = [TopicPartition(topic, p, off + 1) for p, off in last.items()]
    committed = first.commit(offsets=to_commit, asynchronous=False)
    assert committed is not None
    assert all(tp.error is None for tp in committed)
    first.close()

    second = consumer(group)
    stored = second.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    assert {tp.partition: tp.offset for tp in stored if tp.offset >= 0} == {p: o + 1 for p, o in last.items()}
    second.subscribe([topic])
    got_second = consume(second, 400)
    # nothing more arrives: the group has read everything exactly once
    extra = consume(second, 1, deadline_s=3)
    second.close()

    first_values = [val(m) for m in got_first]
    second_values = [val(m) for m in got_second]
    assert len(second_values) == 400
    assert extra == []
    assert set(first_values).isdisjoint(second_values)
    assert sorted(first_values + second_values) == values
    for m in got_second:
        assert off(m) >= last.get(part(m), -1) + 1


@pytest.mark.kafka
def test_kafka_stop_start_keeps_data(admin: AdminClient, topic: str, groups: list[str]) -> None:
    values = [f"durable-{i}" for i in range(300)]
    produce(topic, values)
    group = f"k8x-test-restart-{uuid.uuid4().hex[:8]}"
    groups.append(group)
    c = consumer(group)
    c.subscribe([topic])
    first = consume(c, 100)
    assert len(first) == 100
    last: dict[int, int] = {}
    for m in first:
        last[part(m)] = off(m)
    c.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    c.close()

    t0 = time.monotonic()
    run_script("stop.sh", "kafka", timeout=120)
    stopped_in = time.monotonic() - t0
    assert not port_open(9092)
    status = subprocess.run([str(SCRIPTS / "status.sh"), "kafka"], capture_output=True, text=True, check=False)
    assert status.returncode == 3, status.stdout
    assert re.search(r"^kafka\s+stopped", status.stdout), status.stdout

    # while it is down, an acks=all producer cannot deliver
    p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "message.timeout.ms": 2000})
    errors: list[KafkaError | None] = []
    p.produce(topic, value=b"lost", on_delivery=lambda err, _msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1
    assert errors[0] is not None

    t0 = time.monotonic()
    run_script("start.sh", "kafka", timeout=300)
    started_in = time.monotonic() - t0
    assert port_open(9092)
    assert stopped_in < 70, stopped_in
    assert started_in < 120, started_in

    # the same group resumes after its committed offsets ...
    c = consumer(group)
    c.subscribe([topic])
    rest = consume(c, 200)
    assert consume(c, 1, deadline_s=3) == []
    c.close()
    # ... and a fresh group still sees every message from the beginning
    groups.append(f"k8x-test-fresh-{uuid.uuid4().hex[:8]}")
    fresh = consumer(groups[-1])
    fresh.subscribe([topic])
    everything = consume(fresh, 300)
    fresh.close()

    assert sorted(val(m) for m in everything) == sorted(values)
    assert sorted([val(m) for m in first] + [val(m) for m in rest]) == sorted(values)
