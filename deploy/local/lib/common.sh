# Shared settings for deploy/local/*.sh (sourced, not executed).
# shellcheck shell=bash disable=SC2034
# (variables here are used by the scripts that source this file)
set -euo pipefail

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(git -C "$LOCAL_DIR" rev-parse --show-toplevel 2>/dev/null || (cd "$LOCAL_DIR/../.." && pwd))"

# shellcheck disable=SC1090
source <(sed -e 's/[[:space:]]*#.*$//' "$LOCAL_DIR/versions.env" | grep '=')

CACHE_DIR="${K8X_CACHE_DIR:-$HOME/.cache/k8x}"
STATE_DIR="${K8X_STATE_DIR:-$REPO_ROOT/.state}"
CLUSTER_DIR="$STATE_DIR/cluster"
LOG_DIR="$CLUSTER_DIR/logs"
RUN_DIR="$CLUSTER_DIR/run"

K8S_BIN="$CACHE_DIR/k8s/$K8S_VERSION/bin"
ETCD_BIN_DIR="$CACHE_DIR/etcd/$ETCD_VERSION"
IMAGES_DIR="$CACHE_DIR/images/$IMAGES_VERSION"

# Network of the cluster: a bridge of its own, no route or masquerade out.
BRIDGE=k8x0
BRIDGE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
KUBERNETES_SVC_IP=10.96.0.1
NODE_NAME=k8x-node
REGISTRY=localhost:5000
# The same registry storage behind a login (htpasswd), for image pull secret tests.
REGISTRY_AUTH=localhost:5001
PAUSE_IMAGE="$REGISTRY/k8x/pause:3.10"
BUSYBOX_IMAGE="$REGISTRY/k8x/busybox:1"
PYTHON_IMAGE="$REGISTRY/k8x/python:3"

# Ports (loopback only, except the apiserver which also listens on the bridge
# IP so that pods can reach it through the `kubernetes` Service).
APISERVER_PORT=6443
ETCD_CLIENT_PORT=23790
ETCD_PEER_PORT=23800
REGISTRY_PORT=5000
REGISTRY_AUTH_PORT=5001

CONTAINERD_ROOT="$CLUSTER_DIR/containerd/root"
CONTAINERD_STATE="$CLUSTER_DIR/containerd/state"
CONTAINERD_SOCK="$CLUSTER_DIR/containerd/containerd.sock"
CONTAINERD_CERTS_DIR="$CLUSTER_DIR/containerd/certs.d"

export PATH="$K8S_BIN:/usr/local/go/bin:/usr/sbin:/sbin:$PATH"

# The Go toolchain (for build.sh): /usr/local/go first, then PATH.
find_go() {
  local g
  for g in /usr/local/go/bin/go "$(command -v go 2>/dev/null || true)"; do
    [[ -n $g && -x $g ]] && { echo "$g"; return 0; }
  done
  die "Go toolchain not found (need Go >= 1.26 at /usr/local/go or on PATH)"
}

# with_lock <file>: serialises concurrent runs (e.g. two test sessions calling
# start.sh at once). Nested scripts (wipe.sh -> stop.sh) inherit the lock.
with_lock() {
  local file=$1 var
  var="K8X_LOCKED_$(basename "$file" | tr -c 'A-Za-z0-9\n' _)"
  [[ -n ${!var:-} ]] && return 0
  mkdir -p "$(dirname "$file")"
  exec 9>"$file"
  if ! flock -n 9; then
    log "waiting for another run holding $file"
    flock -w 1800 9 || die "could not take $file"
  fi
  export "$var=1"
}

log() { printf '[k8x-cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*" >&2; exit 1; }
