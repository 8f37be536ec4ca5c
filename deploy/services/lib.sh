# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
# Common helpers for deploy/services/*.sh — sourced, not executed.
#
# Layout (see deploy/services/README.md):
#   state  ${K8X_STATE_DIR:-<repo>/.state}/{postgres,redis,kafka}, logs/<name>.log, run/<name>.pid
#   cache  ${K8X_CACHE_DIR:-$HOME/.cache/k8x}/kafka/<version>/libs/*.jar (+ maven repo)

K8X_SERVICES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8X_REPO="$(git -C "$K8X_SERVICES_DIR" rev-parse --show-toplevel 2>/dev/null || (cd "$K8X_SERVICES_DIR/../.." && pwd))"
K8X_STATE_DIR="${K8X_STATE_DIR:-$K8X_REPO/.state}"
K8X_CACHE_DIR="${K8X_CACHE_DIR:-$HOME/.cache/k8x}"
export K8X_REPO K8X_STATE_DIR K8X_CACHE_DIR

LOG_DIR="$K8X_STATE_DIR/logs"
RUN_DIR="$K8X_STATE_DIR/run"

ALL_SERVICES=(postgres redis kafka)

# --- PostgreSQL --------------------------------------------------------------
PG_PORT=55432
PG_HOST=127.0.0.1
PG_DIR="$K8X_STATE_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_USER=k8x PG_PASSWORD=k8x PG_DB=k8x
DATABASE_URL_VALUE="postgres://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"

# --- Redis --------------------------------------------------------------------
REDIS_PORT=6379
REDIS_DIR="$K8X_STATE_DIR/redis"
REDIS_URL_VALUE="redis://127.0.0.1:$REDIS_PORT/0"

# --- Kafka --------------------------------------------------------------------
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$K8X_SERVICES_DIR/kafka/pom.xml" | head -n1)"
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
# listener for pods (advertised as 10.244.0.1:9094, relayed there by deploy/helm/pod_relay.py)
KAFKA_PODS_PORT=9094
KAFKA_DIR="$K8X_STATE_DIR/kafka"
KAFKA_CACHE="$K8X_CACHE_DIR/kafka/$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_CACHE/libs"
KAFKA_M2="$K8X_CACHE_DIR/maven/repository"
KAFKA_HEAP_OPTS="${K8X_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_BOOTSTRAP_VALUE="127.0.0.1:$KAFKA_PORT"
KAFKA_TOPICS=("k8x.events:4" "k8x.events.dlq:1")

say()  { printf '==> %s\n' "$*"; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die()  { printf '==> ERROR: %s\n' "$*" >&2; exit 1; }

ensure_dirs() { mkdir -p "$LOG_DIR" "$RUN_DIR"; }

# Validate a service list argument; prints the expanded list.
expand_services() {
  local arg="${1:-all}"
  case "$arg" in
    all|"") printf '%s\n' "${ALL_SERVICES[@]}" ;;
    postgres|redis|kafka) printf '%s\n' "$arg" ;;
    *) die "unknown service '$arg' (expected postgres|redis|kafka|all)" ;;
  esac
}

port_open() { # port -> 0 if something accepts TCP on 127.0.0.1:port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid of whatever listens on 127.0.0.1:<port> (empty if none / unknown)
port_owner() {
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1
}

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }

read_pid() { # name -> pid from pid file (empty if none)
  local f; f="$(pid_file "$1")"
  [[ -s "$f" ]] && tr -dc '0-9' <"$f" || true
}

# Does pid belong to our service? (guards against pid reuse)
pid_is() { # pid pattern
  local pid="$1" pat="$2"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pat"
}

svc_pattern() {
  case "$1" in
    postgres) printf '%s' "$PG_DATA" ;;
    redis)    printf '%s' "redis-server" ;;
    kafka)    printf '%s' "kafka.Kafka" ;;
  esac
}

svc_port() {
  case "$1" in postgres) echo "$PG_PORT" ;; redis) echo "$REDIS_PORT" ;; kafka) echo "$KAFKA_PORT" ;; esac
}

# pid of our running instance (empty if not running)
svc_pid() {
  local name="$1" pid
  if [[ "$name" == postgres && -s "$PG_DATA/postmaster.pid" ]]; then
    pid="$(head -n1 "$PG_DATA/postmaster.pid" | tr -dc '0-9')"
    if pid_is "$pid" postgres; then echo "$pid"; return; fi
  fi
  pid="$(read_pid "$name")"
  if pid_is "$pid" "$(svc_pattern "$name")"; then echo "$pid"; fi
}

# Wait until a command succeeds; wait_for <seconds> <description> cmd...
wait_for() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then return 1; fi
    sleep 0.3
  done
}

as_postgres() { # run a command as the postgres OS user when we are root
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  [[ -n "$d" && -x "$d/initdb" ]] || return 1
  printf '%s' "$d"
}

pg_sockdir() {
  # unix socket path must stay under ~107 chars
  local d="$PG_DIR/sock"
  if (( ${#d} > 90 )); then d="/tmp/k8x-pg-$(printf '%s' "$PG_DIR" | md5sum | cut -c1-12)"; fi
  printf '%s' "$d"
}

kafka_jars_ready() {
  [[ -f "$KAFKA_CACHE/.complete" ]] && [[ "$(cat "$KAFKA_CACHE/.complete")" == "$(kafka_pom_hash)" ]]
}

kafka_pom_hash() { sha256sum "$K8X_SERVICES_DIR/kafka/pom.xml" | cut -d' ' -f1; }

kafka_java() { # java with our classpath and quiet tool logging
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$K8X_SERVICES_DIR/kafka/log4j2-tools.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

print_urls() {
  local s
  for s in "$@"; do
    case "$s" in
      postgres) echo "DATABASE_URL=$DATABASE_URL_VALUE" ;;
      redis)    echo "REDIS_URL=$REDIS_URL_VALUE" ;;
      kafka)    echo "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_VALUE" ;;
    esac
  done
}
