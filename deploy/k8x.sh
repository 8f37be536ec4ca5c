#!/usr/bin/env bash
# Runs K8X with its embedded defaults: `up` (idempotent), `down`, `status`.
# The processes are listed in deploy/Procfile; each runs in the background
# with a pid file under .state/run/ and a log under .state/logs/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

WEB_PORT="${K8X_WEB_PORT:-8000}"
BRIDGE_IP="${K8X_BRIDGE_IP:-10.244.0.1}"
ENV_FILE="$K8X_STATE_DIR/k8x.env"

procfile_entries() { grep -E '^[a-z][a-z0-9_-]*:' "$REPO/deploy/Procfile"; }

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
  local bind="-e tcp:port=$WEB_PORT:interface=127.0.0.1"
  # Pods reach K8X on the cluster bridge; bind it only when it exists.
  if [[ "$(ip -4 addr show 2>/dev/null)" == *"inet $BRIDGE_IP/"* ]]; then
    bind="$bind -e tcp:port=$WEB_PORT:interface=$BRIDGE_IP"
  fi
  export K8X_WEB_BIND="$bind"
  while IFS= read -r line; do
    local name="${line%%:*}" cmd="${line#*:}"
    local pidf="$K8X_STATE_DIR/run/k8x-$name.pid" logf="$K8X_STATE_DIR/logs/k8x-$name.log"
    if pid_alive "$pidf"; then
      note "$name: already running (pid $(cat "$pidf"))"
      continue
    fi
    (cd "$REPO" && PATH="$VENV/bin:$PATH" nohup setsid bash -c "exec $cmd" >>"$logf" 2>&1 </dev/null & echo $! >"$pidf")
    note "$name: started (pid $(cat "$pidf")), log $logf"
  done < <(procfile_entries)
}

wait_ready() {
  local url="http://127.0.0.1:$WEB_PORT/readyz"
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  die "the web process did not become ready at $url; see $K8X_STATE_DIR/logs/k8x-web.log"
}

check_alive() {
  local failed=0
  while IFS= read -r line; do
    local name="${line%%:*}" pidf="$K8X_STATE_DIR/run/k8x-${line%%:*}.pid"
    if ! pid_alive "$pidf"; then
      echo "error: $name exited; last lines of $K8X_STATE_DIR/logs/k8x-$name.log:" >&2
      tail -n 20 "$K8X_STATE_DIR/logs/k8x-$name.log" >&2 || true
      failed=1
    fi
  done < <(procfile_entries)
  return $failed
}

cmd_up() {
  step "python environment"
  "$REPO/deploy/bootstrap.sh"
  local services="redis kafka"
  case "${DATABASE_URL:-}" in *127.0.0.1:55432*) services="postgres $services" ;; esac
  step "backing services: $services"
  for s in $services; do "$REPO/deploy/services/start.sh" "$s"; done
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
  step "processes (deploy/Procfile)"
  start_processes
  wait_ready
  sleep 2
  check_alive || die "a K8X process did not stay up"
  step "K8X is up"
  note "console:    http://127.0.0.1:$WEB_PORT"
  note "$admin_msg"
  note "kafka:      127.0.0.1:9092 (topic ${K8X_EVENTS_TOPIC:-k8x.events})"
  note "kubeconfig: ${KUBECONFIG}"
  note "logs:       $K8X_STATE_DIR/logs/"
  note "stop with:  make down"
}

cmd_down() {
  step "stopping K8X processes"
  while IFS= read -r line; do
    local name="${line%%:*}" pidf="$K8X_STATE_DIR/run/k8x-${line%%:*}.pid"
    if pid_alive "$pidf"; then
      local pid; pid="$(cat "$pidf")"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      note "$name: stopped"
    fi
    rm -f "$pidf"
  done < <(procfile_entries)
  if [ "${1:-}" != "--keep-services" ]; then
    [ -x "$REPO/deploy/local/stop.sh" ] && [ -z "${KUBECONFIG:-}" ] && "$REPO/deploy/local/stop.sh" || true
    "$REPO/deploy/services/stop.sh" all || true
  fi
}

cmd_status() {
  while IFS= read -r line; do
    local name="${line%%:*}" pidf="$K8X_STATE_DIR/run/k8x-${line%%:*}.pid"
    if pid_alive "$pidf"; then echo "$name: running (pid $(cat "$pidf"))"; else echo "$name: stopped"; fi
  done < <(procfile_entries)
  [ -x "$REPO/deploy/services/status.sh" ] && "$REPO/deploy/services/status.sh" || true
}

case "${1:-}" in
  up) cmd_up ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down [--keep-services]|status" >&2; exit 2 ;;
esac
