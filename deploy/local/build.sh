#!/usr/bin/env bash
# Builds everything the local cluster needs, cached by version under
# ${K8X_CACHE_DIR:-$HOME/.cache/k8x}:
#   - Debian packages: containerd, runc, CNI plugins, podman, docker-registry,
#     apache2-utils (htpasswd, for the registry behind a login), busybox-static,
#     debootstrap, iptables, conntrack (apt-get, as root)
#   - podman drop-ins so `podman build/push localhost:5000/...` work here
#   - etcd with `go build` (go.etcd.io/etcd/server/v3) -> etcd/<version>/
#   - Kubernetes components with `go build`       -> k8s/<version>/bin/
#   - base images (pause, busybox, python)        -> images/<version>/
# A warm run is a no-op in seconds.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
with_lock "$CACHE_DIR/build.lock"
T0=$SECONDS
[[ $(id -u) -eq 0 ]] || die "build.sh must run as root (apt-get, podman, debootstrap)"

# --- Debian packages ---------------------------------------------------------
PKGS=(containerd runc containernetworking-plugins podman docker-registry apache2-utils busybox-static
      debootstrap iptables conntrack iproute2 openssl curl ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } \
    || die "apt-get install failed"
else
  log "Debian packages present"
fi

# --- podman configuration ----------------------------------------------------
# crun cannot run here (hybrid cgroups) and the hard nofile/nproc limits are
# low: make runc/cgroupfs and 1024 ulimits podman's defaults, and let podman
# talk plain HTTP to the local registry (like kind's localhost:5000).
mkdir -p /etc/containers/containers.conf.d /etc/containers/registries.conf.d
cat > /etc/containers/containers.conf.d/50-k8x.conf.new <<'EOF'
# Installed by K8X deploy/local/build.sh.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat > /etc/containers/registries.conf.d/50-k8x-localhost.conf.new <<EOF
# Installed by K8X deploy/local/build.sh: the local cluster's registry.
[[registry]]
location = "$REGISTRY"
insecure = true
EOF
for f in /etc/containers/containers.conf.d/50-k8x.conf /etc/containers/registries.conf.d/50-k8x-localhost.conf; do
  if cmp -s "$f.new" "$f"; then rm -f "$f.new"; else mv -f "$f.new" "$f"; log "wrote $f"; fi
done

# --- etcd --------------------------------------------------------------------
if [[ -x "$ETCD_BIN_DIR/etcd" ]]; then
  log "etcd $ETCD_VERSION cached in $ETCD_BIN_DIR"
else
  grep -q "go.etcd.io/etcd/server/v3 v$ETCD_VERSION\$" "$LOCAL_DIR/etcd-build/go.mod" \
    || die "etcd-build/go.mod does not pin go.etcd.io/etcd/server/v3 v$ETCD_VERSION (see versions.env)"
  log "building etcd $ETCD_VERSION (go build of go.etcd.io/etcd/server/v3)"
  mkdir -p "$ETCD_BIN_DIR"
  (cd "$LOCAL_DIR/etcd-build" && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 \
    "$(find_go)" build -p 2 -trimpath \
      -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=k8x-module-build" \
      -o "$ETCD_BIN_DIR/.etcd.tmp" .) || die "etcd build failed"
  mv -f "$ETCD_BIN_DIR/.etcd.tmp" "$ETCD_BIN_DIR/etcd"
  log "etcd ready: $("$ETCD_BIN_DIR/etcd" --version | head -1)"
fi

# --- Kubernetes --------------------------------------------------------------
"$LOCAL_DIR/build-k8s.sh"

# --- images ------------------------------------------------------------------
"$REPO_ROOT/deploy/images/build-images.sh"

log "build complete in $((SECONDS - T0))s (cache: $CACHE_DIR)"
