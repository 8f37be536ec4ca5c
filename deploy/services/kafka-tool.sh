#!/usr/bin/env bash
# Run a Kafka CLI class with the cached jars against the local broker, e.g.
#   deploy/services/kafka-tool.sh topics --list
#   deploy/services/kafka-tool.sh topics --describe --topic k8x.events
#   deploy/services/kafka-tool.sh groups --describe --group k8x-hub
#   deploy/services/kafka-tool.sh console-consumer --topic k8x.events --from-beginning --property print.headers=true
#   deploy/services/kafka-tool.sh org.apache.kafka.tools.SomeOtherTool ...
# --bootstrap-server 127.0.0.1:9092 is added for the short names.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 ]] || { sed -n '2,8p' "$0"; exit 2; }
kafka_jars_ready || die "kafka: jars missing in $KAFKA_LIBS (run deploy/services/install.sh)"
tool="$1"; shift
bs=(--bootstrap-server "$KAFKA_BOOTSTRAP_VALUE")
case "$tool" in
  topics)           exec_args=(org.apache.kafka.tools.TopicCommand "${bs[@]}") ;;
  groups)           exec_args=(org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "${bs[@]}") ;;
  console-consumer) exec_args=(org.apache.kafka.tools.consumer.ConsoleConsumer "${bs[@]}") ;;
  console-producer) exec_args=(org.apache.kafka.tools.ConsoleProducer "${bs[@]}") ;;
  *)                exec_args=("$tool") ;;
esac
kafka_java "${exec_args[@]}" "$@"
