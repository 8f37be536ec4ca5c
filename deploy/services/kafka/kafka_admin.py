#!/usr/bin/env python3
"""Tiny Kafka admin helper for deploy/services/start.sh (needs confluent-kafka).

kafka_admin.py --bootstrap 127.0.0.1:9092 ready
    exit 0 once the broker answers a metadata request and has a controller
kafka_admin.py --bootstrap 127.0.0.1:9092 ensure-topics NAME:PARTITIONS ...
    create the topics that do not exist yet (replication factor 1)
"""

import argparse
import sys

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("command", choices=["ready", "ensure-topics"])
    ap.add_argument("topics", nargs="*")
    args = ap.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap, "socket.timeout.ms": 5000})
    try:
        md = admin.list_topics(timeout=5)
    except KafkaException as exc:
        sys.stderr.write(f"metadata request failed: {exc}\n")
        return 1
    if not md.brokers or md.controller_id < 0:
        sys.stderr.write("no broker/controller in metadata yet\n")
        return 1
    if args.command == "ready":
        return 0

    wanted = []
    for spec in args.topics:
        name, _, parts = spec.partition(":")
        if name not in md.topics:
            wanted.append(NewTopic(name, num_partitions=int(parts or 1), replication_factor=1))
    if not wanted:
        return 0
    rc = 0
    for name, fut in admin.create_topics(wanted, request_timeout=30).items():
        try:
            fut.result()
            parts = next(t.num_partitions for t in wanted if t.topic == name)
            sys.stdout.write(f"created topic {name} ({parts} partitions)\n")
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            sys.stderr.write(f"create topic {name} failed: {exc}\n")
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
