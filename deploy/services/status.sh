#!/usr/bin/env bash
# One line per local backing service. Exit 0 if all asked-for services run, 3 otherwise.
# Usage: deploy/services/status.sh [postgres|redis|kafka|all]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t SERVICES < <(expand_services "${1:-all}")
rc=0
for s in "${SERVICES[@]}"; do
  pid="$(svc_pid "$s")"
  port="$(svc_port "$s")"
  url="$(print_urls "$s")"
  if [[ -n "$pid" ]] && port_open "$port"; then
    printf '%-9s running  pid %-7s 127.0.0.1:%-6s %s\n' "$s" "$pid" "$port" "$url"
  elif [[ -n "$pid" ]]; then
    printf '%-9s starting pid %-7s 127.0.0.1:%-6s (port not open yet; log %s)\n' "$s" "$pid" "$port" "$LOG_DIR/$s.log"
    rc=3
  elif port_open "$port"; then
    printf '%-9s foreign  pid %-7s 127.0.0.1:%-6s (port used by a process not started from %s)\n' "$s" "$(port_owner "$port")" "$port" "$K8X_STATE_DIR"
    rc=3
  else
    printf '%-9s stopped\n' "$s"
    rc=3
  fi
done
exit "$rc"
