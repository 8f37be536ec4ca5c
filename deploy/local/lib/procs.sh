# Background process helpers for deploy/local/*.sh (sourced after common.sh).
# Every component runs detached (own session, stdin closed) with its pid in
# $RUN_DIR/<name>.pid and its output appended to $LOG_DIR/<name>.log.
# shellcheck shell=bash

write_file() {  # write_file <path> < content: replaces the file only if the content changed
  # (atomically): running components (kube-proxy!) exit when their config changes.
  local path=$1 tmp
  tmp="$(mktemp "$(dirname "$path")/.$(basename "$path").XXXXXX")"
  cat > "$tmp"
  if cmp -s "$tmp" "$path"; then rm -f "$tmp"; else chmod 644 "$tmp"; mv -f "$tmp" "$path"; fi
}

containerd_plain_http_host() {  # containerd_plain_http_host <name:port> <port>: containerd pulls <name:port>
  # images from 127.0.0.1:<port> over plain HTTP (a loopback-only local registry). containerd reads
  # certs.d at every pull: a running containerd needs no restart.
  local name=$1 port=$2
  mkdir -p "$CONTAINERD_CERTS_DIR/$name"
  write_file "$CONTAINERD_CERTS_DIR/$name/hosts.toml" <<EOF
# The local registry speaks plain HTTP on loopback only.
server = "http://127.0.0.1:$port"

[host."http://127.0.0.1:$port"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
EOF
}

pid_of() {  # pid_of <name>: prints the pid if that component is running
  local f="$RUN_DIR/$1.pid" pid
  [[ -s $f ]] || return 1
  pid="$(cat "$f")"
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  # Guard against pid reuse: the command line must name the component's binary.
  local cmdline bin
  cmdline="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || return 1
  bin="$(cat "$RUN_DIR/$1.bin" 2>/dev/null || echo "$1")"
  [[ $cmdline == *"$bin"* ]] || return 1
  echo "$pid"
}

is_running() { pid_of "$1" >/dev/null; }

start_bg() {  # start_bg <name> <binary> [args...]
  local name=$1 bin=$2; shift 2
  if is_running "$name"; then
    log "$name already running (pid $(pid_of "$name"))"
    return 0
  fi
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  printf '\n===== %s start %s =====\n' "$name" "$(date -u +%FT%TZ)" >> "$LOG_DIR/$name.log"
  # fd 9 is the cluster lock: daemons must not keep it open.
  setsid nohup "$bin" "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 9>&- &
  local pid=$! i
  echo "$pid" > "$RUN_DIR/$name.pid"
  basename "$bin" > "$RUN_DIR/$name.bin"
  # Until the forked shell has exec'd (setsid, nohup, then the binary) its command line is
  # this script's, and is_running would call a starting component dead: wait for the exec.
  for ((i = 0; i < 200; i++)); do
    is_running "$name" && break
    alive "$pid" || break  # it died: the caller's checks report it, with its log
    sleep 0.05
  done
  log "started $name (pid $pid, log $LOG_DIR/$name.log)"
}

ensure_port_free() {  # ensure_port_free <name> <addr:port>: unless <name> runs, nothing may listen there
  is_running "$1" && return 0
  local port=${2##*:} listeners
  listeners="$(ss -Hltnp "sport = :$port" 2>/dev/null || true)"
  [[ -z $listeners ]] || die "cannot start $1: port $port is taken by another process: $listeners"
}

require_running() {  # require_running <name>...: each still runs, else show the end of its log and stop
  local name
  for name in "$@"; do
    is_running "$name" && continue
    tail -n 25 "$LOG_DIR/$name.log" >&2 || true
    die "$name exited (log: $LOG_DIR/$name.log)"
  done
}

alive() {  # alive <pid>: exists and is not a zombie waiting to be reaped
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ ${stat:0:1} != Z ]]
}

stop_proc() {  # stop_proc <name> [timeout seconds]
  local name=$1 timeout=${2:-20} pid i
  if ! pid="$(pid_of "$name")"; then
    rm -f "$RUN_DIR/$name.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$name did not stop in ${timeout}s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$RUN_DIR/$name.pid"
  log "stopped $name"
}

stop_procs() {  # stop_procs <timeout seconds> <name>...: stops them in parallel
  local timeout=$1 name; shift
  for name in "$@"; do stop_proc "$name" "$timeout" & done
  wait
}

wait_for() {  # wait_for <what> <timeout s> <name of process to check or -> <command...>
  local what=$1 timeout=$2 proc=$3 start=$SECONDS; shift 3
  until "$@" >/dev/null 2>&1; do
    if [[ $proc != - ]] && ! is_running "$proc"; then
      tail -n 25 "$LOG_DIR/$proc.log" >&2 || true
      die "$proc exited while waiting for $what (log: $LOG_DIR/$proc.log)"
    fi
    if (( SECONDS - start >= timeout )); then
      [[ $proc != - ]] && { tail -n 25 "$LOG_DIR/$proc.log" >&2 || true; }
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.25
  done
}
