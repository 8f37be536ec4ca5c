#!/usr/bin/env bash
# Start the local backing services (idempotent): PostgreSQL on 127.0.0.1:55432,
# Redis on 127.0.0.1:6379, Kafka (KRaft) on 127.0.0.1:9092.
# Usage: deploy/services/start.sh [postgres|redis|kafka|all]
# Installs what is missing first, starts what is not running, waits until each
# service answers, then prints the connection URLs. Running it twice is harmless.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t SERVICES < <(expand_services "${1:-all}")
ensure_dirs

# one start/stop at a time (tests and `make up` may race); daemons get 9>&-
exec 9>"$RUN_DIR/.services.lock"
flock -w 600 9 || die "could not take $RUN_DIR/.services.lock"

"$K8X_SERVICES_DIR/install.sh" "${1:-all}" 9>&-

port_must_be_free() { # name port
  local owner
  if port_open "$2"; then
    owner="$(port_owner "$2")"
    die "$1: port 127.0.0.1:$2 is already taken by pid ${owner:-?} ($(ps -o args= -p "${owner:-0}" 2>/dev/null | cut -c1-80)), which is not our instance; stop it first"
  fi
}

log_banner() { printf '\n===== %s: start requested by deploy/services/start.sh at %s =====\n' "$1" "$(date -Is)" >>"$LOG_DIR/$1.log"; }

# ----------------------------------------------------------------- PostgreSQL
start_postgres() {
  local bindir pid sockdir
  bindir="$(pg_bindir)" || die "postgres: no /usr/lib/postgresql/*/bin/initdb (install failed?)"
  sockdir="$(pg_sockdir)"
  pid="$(svc_pid postgres)"
  if [[ -z "$pid" ]]; then
    mkdir -p "$PG_DIR" "$sockdir"
    if [[ "$(id -u)" == 0 ]]; then
      chown postgres:postgres "$PG_DIR" "$sockdir"
      runuser -u postgres -- test -w "$PG_DIR" \
        || die "postgres: the 'postgres' OS user cannot reach $PG_DIR (a parent directory is not world-searchable); set K8X_STATE_DIR elsewhere"
    fi
    if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
      say "postgres: initdb in $PG_DATA (first run)"
      rm -rf "$PG_DATA"
      as_postgres "$bindir/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; die "postgres: initdb failed"; }
      echo "include_if_exists = 'k8x.conf'" >>"$PG_DATA/postgresql.conf"
    fi
    # our settings, rewritten on every start
    cat >"$PG_DATA/k8x.conf" <<CONF
# written by deploy/services/start.sh — edits are overwritten
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sockdir'
max_connections = 200
shared_buffers = 128MB
password_encryption = scram-sha-256
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
CONF
    [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$PG_DATA/k8x.conf"
    port_must_be_free postgres "$PG_PORT"
    touch "$LOG_DIR/postgres.log"
    [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$LOG_DIR/postgres.log"
    log_banner postgres
    say "postgres: starting on 127.0.0.1:$PG_PORT"
    as_postgres "$bindir/pg_ctl" -D "$PG_DATA" -l "$LOG_DIR/postgres.log" -w -t 60 start >/dev/null 9>&- \
      || { tail -n 20 "$LOG_DIR/postgres.log" >&2; die "postgres: failed to start (log: $LOG_DIR/postgres.log)"; }
    pid="$(svc_pid postgres)"
  else
    say "postgres: already running (pid $pid)"
  fi
  printf '%s\n' "$pid" >"$(pid_file postgres)"
  wait_for 30 "postgres ready" pg_isready -q -h 127.0.0.1 -p "$PG_PORT" \
    || die "postgres: not accepting connections on 127.0.0.1:$PG_PORT (log: $LOG_DIR/postgres.log)"
  # role + database (idempotent); superuser 'postgres' over the unix socket (trust)
  "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$PG_PORT" -U postgres -d postgres >/dev/null <<SQL
DO \$\$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END\$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\gexec
SQL
  PGPASSWORD="$PG_PASSWORD" "$bindir/psql" -X -qAt -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -c 'SELECT 1' >/dev/null \
    || die "postgres: cannot log in as $PG_USER over TCP"
  say "postgres: ready"
}

# ---------------------------------------------------------------------- Redis
start_redis() {
  local pid conf="$REDIS_DIR/redis.conf"
  pid="$(svc_pid redis)"
  if [[ -z "$pid" ]]; then
    port_must_be_free redis "$REDIS_PORT"
    mkdir -p "$REDIS_DIR"
    sed -e "s|@PIDFILE@|$(pid_file redis)|" -e "s|@LOGFILE@|$LOG_DIR/redis.log|" -e "s|@DIR@|$REDIS_DIR|" \
      "$K8X_SERVICES_DIR/redis/redis.conf.in" >"$conf"
    rm -f "$(pid_file redis)"
    log_banner redis
    say "redis: starting on 127.0.0.1:$REDIS_PORT"
    redis-server "$conf" 9>&- || die "redis: failed to start (log: $LOG_DIR/redis.log)"
    wait_for 10 "redis pid file" test -s "$(pid_file redis)" || true
  else
    say "redis: already running (pid $pid)"
  fi
  wait_for 30 "redis ready" bash -c "[[ \"\$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping)\" == PONG ]]" \
    || { tail -n 20 "$LOG_DIR/redis.log" >&2; die "redis: not answering PING on 127.0.0.1:$REDIS_PORT (log: $LOG_DIR/redis.log)"; }
  say "redis: ready"
}

# ---------------------------------------------------------------------- Kafka
kafka_admin() { # ready | ensure-topics name:partitions...
  # Fast path: python + confluent-kafka when importable; else the Kafka CLI classes.
  if [[ "${K8X_KAFKA_ADMIN:-auto}" != java ]] && "${PYTHON:-python3}" -c 'import confluent_kafka' 2>/dev/null; then
    "${PYTHON:-python3}" "$K8X_SERVICES_DIR/kafka/kafka_admin.py" --bootstrap "$KAFKA_BOOTSTRAP_VALUE" "$@"
    return
  fi
  local cmd="$1"; shift
  case "$cmd" in
    ready)
      kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP_VALUE" --list >/dev/null ;;
    ensure-topics)
      local spec existing
      existing="$(kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP_VALUE" --list)"
      for spec in "$@"; do
        grep -qxF "${spec%%:*}" <<<"$existing" && continue
        kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP_VALUE" \
          --create --if-not-exists --topic "${spec%%:*}" --partitions "${spec##*:}" --replication-factor 1 >/dev/null
        echo "created topic ${spec%%:*} (${spec##*:} partitions)"
      done ;;
  esac
}

start_kafka() {
  local pid props="$KAFKA_DIR/server.properties" cid
  kafka_jars_ready || die "kafka: jars missing in $KAFKA_LIBS (run deploy/services/install.sh)"
  pid="$(svc_pid kafka)"
  if [[ -z "$pid" ]]; then
    port_must_be_free kafka "$KAFKA_PORT"
    port_must_be_free kafka-controller "$KAFKA_CONTROLLER_PORT"
    port_must_be_free kafka-pods "$KAFKA_PODS_PORT"
    mkdir -p "$KAFKA_DIR/data"
    sed -e "s|@KAFKA_DATA@|$KAFKA_DIR/data|" "$K8X_SERVICES_DIR/kafka/server.properties.in" >"$props"
    if [[ ! -s "$KAFKA_DIR/data/meta.properties" ]]; then
      [[ -s "$KAFKA_DIR/cluster.id" ]] || kafka_java kafka.tools.StorageTool random-uuid >"$KAFKA_DIR/cluster.id"
      cid="$(tr -d '[:space:]' <"$KAFKA_DIR/cluster.id")"
      say "kafka: formatting storage in $KAFKA_DIR/data (cluster id $cid, first run)"
      kafka_java kafka.tools.StorageTool format -t "$cid" -c "$props" --ignore-formatted >/dev/null \
        || die "kafka: storage format failed"
    fi
    rm -f "$(pid_file kafka)"
    log_banner kafka
    say "kafka: starting Apache Kafka $KAFKA_VERSION (KRaft) on 127.0.0.1:$KAFKA_PORT"
    # setsid: own session, survives the calling shell; $$ of the exec'd bash is java's pid
    # shellcheck disable=SC2016,SC2086  # $$ is for the inner bash; heap opts split on purpose
    KAFKA_PIDFILE="$(pid_file kafka)" setsid bash -c 'echo $$ >"$KAFKA_PIDFILE"; exec "$@"' kafka \
      java $KAFKA_HEAP_OPTS -server \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$K8X_SERVICES_DIR/kafka/log4j2.properties" \
        -Dkafka.logs.dir="$LOG_DIR" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$props" \
      >>"$LOG_DIR/kafka.log" 2>&1 </dev/null 9>&- &
    wait_for 5 "kafka pid file" test -s "$(pid_file kafka)" || true
    pid="$(read_pid kafka)"
    local deadline=$((SECONDS + 90))
    until port_open "$KAFKA_PORT"; do
      if ! kill -0 "${pid:-0}" 2>/dev/null; then
        tail -n 30 "$LOG_DIR/kafka.log" >&2; die "kafka: broker exited during startup (log: $LOG_DIR/kafka.log)"
      fi
      (( SECONDS < deadline )) || die "kafka: port $KAFKA_PORT not open after 90s (log: $LOG_DIR/kafka.log)"
      sleep 0.3
    done
  else
    say "kafka: already running (pid $pid)"
    port_open "$KAFKA_PODS_PORT" \
      || warn "kafka: this broker has no PODS listener on 127.0.0.1:$KAFKA_PODS_PORT (started before it was added); pods cannot reach it until it is restarted (stop.sh kafka && start.sh kafka)"
  fi
  wait_for 60 "kafka metadata" kafka_admin ready \
    || { tail -n 30 "$LOG_DIR/kafka.log" >&2; die "kafka: broker does not answer metadata requests (log: $LOG_DIR/kafka.log)"; }
  local spec; local -a specs=()
  for spec in "${KAFKA_TOPICS[@]}"; do specs+=("$spec"); done
  kafka_admin ensure-topics "${specs[@]}" | sed 's/^/==> kafka: /'
  say "kafka: ready"
}

for s in "${SERVICES[@]}"; do "start_$s"; done
echo
print_urls "${SERVICES[@]}"
