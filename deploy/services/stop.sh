#!/usr/bin/env bash
# Stop local backing services gracefully (SIGTERM / pg_ctl fast, wait, then SIGKILL).
# Data is kept. Usage: deploy/services/stop.sh [postgres|redis|kafka|all]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t SERVICES < <(expand_services "${1:-all}")
ensure_dirs
exec 9>"$RUN_DIR/.services.lock"
flock -w 600 9 || die "could not take $RUN_DIR/.services.lock"

wait_gone() { # pid seconds
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
}

term_then_kill() { # name pid grace-seconds
  local name="$1" pid="$2" grace="$3"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$grace"; then
    warn "$name: still running after ${grace}s, sending SIGKILL to $pid"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "$name: pid $pid survived SIGKILL"
  fi
}

stop_one() {
  local name="$1" pid port
  pid="$(svc_pid "$name")"
  port="$(svc_port "$name")"
  if [[ -z "$pid" ]]; then
    rm -f "$(pid_file "$name")"
    if port_open "$port"; then
      warn "$name: not running from $K8X_STATE_DIR, but port $port is in use by pid $(port_owner "$port") — left alone"
    else
      say "$name: not running"
    fi
    return 0
  fi
  say "$name: stopping (pid $pid)"
  case "$name" in
    postgres)
      local bindir; bindir="$(pg_bindir)"
      # fast = roll back client transactions, checkpoint, exit
      if ! as_postgres "$bindir/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1; then
        warn "postgres: fast shutdown timed out, trying immediate"
        as_postgres "$bindir/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
        kill -0 "$pid" 2>/dev/null && term_then_kill postgres "$pid" 1
      fi ;;
    redis) term_then_kill redis "$pid" 30 ;;   # SIGTERM: redis saves the RDB and exits
    kafka) term_then_kill kafka "$pid" 60 ;;   # SIGTERM: controlled shutdown, flushes logs
  esac
  rm -f "$(pid_file "$name")"
  local deadline=$((SECONDS + 10))
  while port_open "$port" && (( SECONDS < deadline )); do sleep 0.2; done
  say "$name: stopped"
}

for s in "${SERVICES[@]}"; do stop_one "$s"; done
