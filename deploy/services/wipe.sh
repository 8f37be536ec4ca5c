#!/usr/bin/env bash
# Stop the local backing services and delete their state (data, logs, pid files).
# The download cache ($K8X_CACHE_DIR) is kept. Other .state/ content is not touched.
# Usage: deploy/services/wipe.sh [postgres|redis|kafka|all]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t SERVICES < <(expand_services "${1:-all}")
"$K8X_SERVICES_DIR/stop.sh" "${1:-all}"
for s in "${SERVICES[@]}"; do
  say "$s: deleting $K8X_STATE_DIR/$s and its log/pid"
  rm -rf "${K8X_STATE_DIR:?}/$s" "$LOG_DIR/$s.log" "$(pid_file "$s")"
  if [[ "$s" == postgres ]]; then
    sockdir="$(pg_sockdir)"
    [[ "$sockdir" == /tmp/k8x-pg-* ]] && rm -rf "$sockdir"
  fi
done
say "wiped (cache kept in $K8X_CACHE_DIR)"
