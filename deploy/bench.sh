#!/usr/bin/env bash
# `make bench`: every benchmark in bench/ against the real services, each
# printing a table with its ratio to the physical limit measured in the same run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
"$REPO/deploy/bootstrap.sh"
"$REPO/deploy/services/start.sh" all
if [ -z "${KUBECONFIG:-}" ]; then
  "$REPO/deploy/local/build.sh"
  # start.sh prints the kubeconfig path last (another checkout's cluster may be the running one).
  KUBECONFIG="$("$REPO/deploy/local/start.sh" | tail -n 1)"
  export KUBECONFIG
fi
export PATH="$VENV/bin:$PATH"
export DATABASE_URL="${BENCH_DATABASE_URL:-postgres://k8x:k8x@127.0.0.1:55432/k8x_bench}"
cd "$REPO"
status=0
for script in bench/bench_*.py; do
  step "$script"
  python "$script" || { echo "benchmark failed: $script" >&2; status=1; }
done
exit $status
