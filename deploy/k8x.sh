#!/usr/bin/env bash
# Runs K8X with its embedded defaults: `up` (idempotent), `down`, `status`.
# The processes are listed in deploy/Procfile; supervisord (from PyPI, in
# .venv) runs them: its config is generated from the Procfile at every `up`
# into .state/supervisord.conf, its socket and pid file live in .state/run/,
# each process logs to .state/logs/k8x-<name>.log (rotated by supervisord).
# A process that dies is started again within seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

WEB_PORT="${K8X_WEB_PORT:-8000}"
# The Procfile's processes serve health and metrics on this base + 1 … 6.
export K8X_HEALTH_PORT_BASE="${K8X_HEALTH_PORT_BASE:-9100}"
BRIDGE_IP="${K8X_BRIDGE_IP:-10.244.0.1}"
ENV_FILE="$K8X_STATE_DIR/k8x.env"
# The physical path: it is the marker value in the programs' environment.
STATE_DIR="$(cd "$K8X_STATE_DIR" && pwd -P)"
CONF="$STATE_DIR/supervisord.conf"
SUP_SOCKET="$STATE_DIR/run/supervisor.sock"
SUP_OUT="$STATE_DIR/logs/supervisord.out"
PY="$VENV/bin/python"
[ -x "$PY" ] || PY=python3

supervisor_conf() { "$PY" "$REPO/deploy/supervisor_conf.py" --procfile "$REPO/deploy/Procfile" --repo "$REPO" --state-dir "$STATE_DIR" "$@"; }
procfile_names() { supervisor_conf --names; }
ctl() { "$VENV/bin/supervisorctl" -c "$CONF" "$@"; }

# pid of this state directory's supervisord, if it runs: found by its
# command line (`supervisord -c <this config>`), so a lost or stale pid file
# never leads to a second supervisor.
supervisor_pid() {
  local f pid
  for f in $(grep -lzxF -- "$CONF" /proc/[0-9]*/cmdline 2>/dev/null); do
    pid="${f#/proc/}"
    pid="${pid%/cmdline}"
    if [ "$pid" != "$$" ] && tr '\0' ' ' <"$f" 2>/dev/null | grep -qF -- "supervisord -c $CONF"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# Live processes (zombies excluded) among the given pids.
alive_pids() {
  local p
  for p in "$@"; do
    [ -r "/proc/$p/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null && echo "$p"
  done
  return 0
}

# Processes started under this state directory's supervisor, children
# included: each has K8X_SUPERVISED=<state dir> in its environment.
marked_pids() {
  local f pid
  for f in $(grep -lzxF -- "K8X_SUPERVISED=$STATE_DIR" /proc/[0-9]*/environ 2>/dev/null); do
    pid="${f#/proc/}"
    pid="${pid%/environ}"
    [ "$pid" != "$$" ] && echo "$pid"
  done
  return 0
}

# SIGTERM, up to 15 s for them to end, then SIGKILL.
stop_pids() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 1 30); do
    [ -z "$(alive_pids "$@")" ] && return 0
    sleep 0.5
  done
  kill -KILL "$@" 2>/dev/null || true
}

# Processes of a supervisor that is gone (killed): stopped, so that the new
# supervisor does not start a second hub, worker or watcher beside them.
stop_strays() {
  local pids
  mapfile -t pids < <(alive_pids $(marked_pids))
  [ ${#pids[@]} -gt 0 ] || return 0
  local p
  for p in "${pids[@]}"; do note "left over: pid $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-80)): stopping"; done
  stop_pids "${pids[@]}"
}

# Before the supervisor, k8x.sh kept a pid file per process naming a bash
# wrapper, the process being its child in a session of its own: stop those
# once, so an update does not run every process twice.
stop_legacy() {
  local f pid child name pids=()
  for f in "$STATE_DIR"/run/k8x-*.pid; do
    [ -f "$f" ] || continue
    pid="$(tr -dc 0-9 <"$f")"
    name="$(basename "$f" .pid)"
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE 'k8x[^ ]*\.sh'; then
      for child in $(ps -o pid= --ppid "$pid"); do
        kill -TERM -- "-$child" 2>/dev/null || true
        pids+=("$child")
      done
      pids+=("$pid")
      note "${name#k8x-}: stopping (started by an older k8x.sh without supervisor, pid $pid)"
    fi
    rm -f "$f"
  done
  stop_pids "${pids[@]}"
}

# One `make up`/`make down` at a time on a state directory. fd 8 is closed
# for supervisord, which must not hold the lock.
take_lock() {
  exec 8>"$STATE_DIR/run/.k8x.lock"
  flock -w 300 8 || die "another deploy/k8x.sh holds $STATE_DIR/run/.k8x.lock"
}

# The backing services `make up` starts: $K8X_SERVICES (space or comma
# separated; `none`: none), else redis and kafka, plus postgres when
# DATABASE_URL points to the local one.
backing_services() {
  local list="${K8X_SERVICES:-}" s
  if [ -z "$list" ]; then
    list="redis kafka"
    case "${DATABASE_URL:-}" in *127.0.0.1:55432*) list="postgres $list" ;; esac
  fi
  for s in ${list//,/ }; do
    case "$s" in
      none) ;;
      postgres | redis | kafka) echo "$s" ;;
      *) die "K8X_SERVICES: unknown service '$s' (expected postgres, redis, kafka or none)" ;;
    esac
  done
}

ensure_env_file() {
  [ -f "$ENV_FILE" ] && return 0
  step "settings: generating $ENV_FILE (SECRET_KEY, K8X_SECRETS_KEY)"
  umask 077
  "$VENV/bin/python" - "$ENV_FILE" <<'PY'
import secrets, sys
from cryptography.fernet import Fernet
with open(sys.argv[1], "w") as f:
    f.write(f"SECRET_KEY={secrets.token_urlsafe(50)}\n")
    f.write(f"K8X_SECRETS_KEY={Fernet.generate_key().decode()}\n")
PY
}

start_processes() {
  local bind="-e tcp:port=$WEB_PORT:interface=127.0.0.1" pid
  # Pods reach K8X on the cluster bridge; bind it only when it exists.
  if [[ "$(ip -4 addr show 2>/dev/null)" == *"inet $BRIDGE_IP/"* ]]; then
    bind="$bind -e tcp:port=$WEB_PORT:interface=$BRIDGE_IP"
  fi
  take_lock
  supervisor_conf --web-bind "$bind" --output "$CONF" || die "could not write $CONF from deploy/Procfile"
  if pid="$(supervisor_pid)"; then
    note "supervisor: already running (pid $pid); applying $CONF"
    # Starts added programs, stops removed ones, restarts changed ones; then
    # starts any that were stopped or had given up. Running ones are left alone.
    ctl update | sed 's/^/    /' || true
    ctl start all >/dev/null 2>&1 || true
  else
    stop_legacy
    stop_strays
    rm -f "$SUP_SOCKET"
    # No stdin/stdout/stderr of ours: `make up | cat` returns at once.
    (cd "$REPO" && PATH="$VENV/bin:$PATH" exec "$VENV/bin/supervisord" -c "$CONF") \
      </dev/null >>"$SUP_OUT" 2>&1 8>&- || {
      tail -n 20 "$SUP_OUT" >&2
      die "supervisord did not start; see $SUP_OUT and $STATE_DIR/logs/supervisord.log"
    }
    for _ in $(seq 1 40); do ctl pid >/dev/null 2>&1 && break; sleep 0.25; done
    pid="$(supervisor_pid)" || die "supervisord is not answering on $SUP_SOCKET; see $STATE_DIR/logs/supervisord.log"
    note "supervisor: started (pid $pid), config $CONF"
  fi
  exec 8>&-
}

wait_ready() {
  local url="http://127.0.0.1:$WEB_PORT/readyz"
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  die "the web process did not become ready at $url; see $STATE_DIR/logs/k8x-web.log (make status)"
}

# Is every line of this `supervisorctl status` output a RUNNING program?
all_running() { [ -n "$1" ] && ! grep -qv '^[^ ]* *RUNNING ' <<<"$1"; }

# Every program RUNNING (it stayed up its first seconds), or the error with
# the log of each one that is not. The supervisor keeps retrying those.
wait_running() {
  local out name state pid log
  # (`supervisorctl status` exits 0 for STARTING and BACKOFF too: read the states.)
  for _ in $(seq 1 90); do
    out="$(ctl status 2>&1)" || true
    all_running "$out" && break
    [[ "$out" == *FATAL* ]] && break
    sleep 1
  done
  while read -r name state _ pid _; do
    log="$STATE_DIR/logs/k8x-$name.log"
    [ "$name" = supervisor-reaper ] && log="$STATE_DIR/logs/$name.log"
    if [ "$state" = RUNNING ]; then
      note "$name: running (pid ${pid%,}), log $log"
    else
      echo "error: $name is $state; last lines of $log:" >&2
      tail -n 20 "$log" >&2 || true
    fi
  done <<<"$out"
  all_running "$out" || die "a K8X process did not stay up (the supervisor retries it: make status; make down stops everything)"
}

cmd_up() {
  step "python environment"
  "$REPO/deploy/bootstrap.sh"
  local services
  services="$(backing_services)" || exit 1
  if [ -n "$services" ]; then
    step "backing services: $(echo $services)"
    for s in $services; do "$REPO/deploy/services/start.sh" "$s"; done
  else
    note "backing services: none started (K8X_SERVICES=$K8X_SERVICES)"
  fi
  if [ -z "${KUBECONFIG:-}" ]; then
    step "local Kubernetes cluster (first run builds it: this takes a while)"
    "$REPO/deploy/local/build.sh"
    # start.sh prints the kubeconfig path last (another checkout's cluster may be the running one).
    KUBECONFIG="$("$REPO/deploy/local/start.sh" | tail -n 1)"
    # K8X's processes use its own least-privilege identity, never the cluster admin.
    KUBECONFIG="$("$REPO/deploy/local/k8x-identity.sh" "$KUBECONFIG" | tail -n 1)"
    export KUBECONFIG
  else
    note "using KUBECONFIG=$KUBECONFIG"
  fi
  ensure_env_file
  step "database: migrate"
  (cd "$REPO" && "$VENV/bin/python" manage.py migrate --noinput -v0)
  (cd "$REPO" && "$VENV/bin/python" manage.py collectstatic --noinput -v0)
  local admin_msg
  admin_msg="$(cd "$REPO" && "$VENV/bin/python" manage.py k8x_bootstrap)"
  step "processes (deploy/Procfile, supervised)"
  start_processes
  wait_ready
  wait_running
  step "K8X is up"
  note "console:    http://127.0.0.1:$WEB_PORT"
  note "$admin_msg"
  note "kafka:      127.0.0.1:9092 (topic ${K8X_EVENTS_TOPIC:-k8x.events})"
  note "kubeconfig: ${KUBECONFIG}"
  note "logs:       $STATE_DIR/logs/ (k8x-<name>.log, supervisord.log)"
  note "status:     make status (a process that dies is restarted within seconds)"
  note "stop with:  make down"
}

cmd_down() {
  step "stopping K8X processes"
  take_lock
  local pid
  if pid="$(supervisor_pid)"; then
    ctl stop all 2>&1 | sed 's/^/    /' || true
    ctl shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do [ -z "$(alive_pids "$pid")" ] && break; sleep 0.5; done
    [ -n "$(alive_pids "$pid")" ] && kill -KILL "$pid" 2>/dev/null
    note "supervisor: stopped (pid $pid)"
  else
    note "supervisor: not running"
  fi
  stop_legacy
  stop_strays
  rm -f "$SUP_SOCKET"
  local left
  left="$(alive_pids $(marked_pids))"
  [ -z "$left" ] || die "K8X processes still running after SIGKILL: $(echo $left)"
  exec 8>&-
  if [ "${1:-}" != "--keep-services" ]; then
    [ -x "$REPO/deploy/local/stop.sh" ] && [ -z "${KUBECONFIG:-}" ] && "$REPO/deploy/local/stop.sh" || true
    local services=all
    # An explicit K8X_SERVICES names the services `make up` started: only those.
    if [ -n "${K8X_SERVICES:-}" ]; then services="$(backing_services)" || exit 1; fi
    for s in $services; do "$REPO/deploy/services/stop.sh" "$s" || true; done
  fi
}

cmd_status() {
  local pid name strays
  if pid="$(supervisor_pid)"; then
    echo "supervisor: running (pid $pid), config $CONF, logs $STATE_DIR/logs/"
    ctl status | sed -E 's/^([^ ]+) +/\1: /' || true
  else
    echo "supervisor: not running"
    procfile_names | while read -r name; do echo "$name: stopped"; done
    strays="$(alive_pids $(marked_pids))"
    [ -z "$strays" ] || echo "left over from a supervisor that is gone: pids $(echo $strays) (make down stops them)"
  fi
  [ -x "$REPO/deploy/services/status.sh" ] && "$REPO/deploy/services/status.sh" || true
}

case "${1:-}" in
  up) cmd_up ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down [--keep-services]|status" >&2; exit 2 ;;
esac
