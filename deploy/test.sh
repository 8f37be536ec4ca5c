#!/usr/bin/env bash
# `make test`: every check and the whole test suite against the real services.
# Exits 0 only when all pass.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
set -e
"$REPO/deploy/bootstrap.sh"
"$REPO/deploy/system-deps.sh"
step "backing services"
"$REPO/deploy/services/start.sh" all
if [ -z "${KUBECONFIG:-}" ]; then
  step "local Kubernetes cluster"
  "$REPO/deploy/local/build.sh"
  # start.sh prints the kubeconfig path last (another checkout's cluster may be the running one).
  # That admin kubeconfig is for test fixtures only; K8X under test uses its own
  # least-privilege identity (deploy/local/k8x-identity.sh prints its kubeconfig last).
  K8X_TEST_ADMIN_KUBECONFIG="$("$REPO/deploy/local/start.sh" | tail -n 1)"
  KUBECONFIG="$("$REPO/deploy/local/k8x-identity.sh" "$K8X_TEST_ADMIN_KUBECONFIG" | tail -n 1)"
  export KUBECONFIG K8X_TEST_ADMIN_KUBECONFIG
fi
step "helm and K8X's images (tests/deploy/helm; cached by version and content hash: no-ops when warm)"
"$REPO/deploy/helm/build-helm.sh" >/dev/null
"$REPO/deploy/image/build.sh" k8x >/dev/null
"$REPO/deploy/image/build.sh" redis >/dev/null
set +e

export PATH="$VENV/bin:$PATH"
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://k8x:k8x@127.0.0.1:55432/k8x}"
cd "$REPO"
failed=()
run() {
  local name="$1"; shift
  step "$name: $*"
  "$@" || failed+=("$name")
}
run ruff-lint ruff check .
run ruff-format ruff format --check .
run mypy mypy .
run import-linter lint-imports --no-cache
run pytest python -m pytest "$@"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
step "all checks passed"
