# Shared shell helpers for K8X's scripts. Source it; it sets REPO, K8X_STATE_DIR, K8X_CACHE_DIR.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export K8X_STATE_DIR="${K8X_STATE_DIR:-$REPO/.state}"
export K8X_CACHE_DIR="${K8X_CACHE_DIR:-$HOME/.cache/k8x}"
VENV="${K8X_VENV:-$REPO/.venv}"
mkdir -p "$K8X_STATE_DIR/logs" "$K8X_STATE_DIR/run"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Is the process of this pid file alive?
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
