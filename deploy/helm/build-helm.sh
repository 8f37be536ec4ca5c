#!/usr/bin/env bash
# Builds the helm CLI from the helm.sh/helm/v3 Go module at HELM_VERSION
# (pinned in helm-build/go.mod) into $K8X_CACHE_DIR/helm/<version>/helm.
# Progress goes to stderr; the binary's path is printed last on stdout.
# A warm run (binary present for this version) is a no-op.
set -euo pipefail
HELM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_VERSION=v3.22.0
CACHE_DIR="${K8X_CACHE_DIR:-$HOME/.cache/k8x}"
OUT_DIR="$CACHE_DIR/helm/$HELM_VERSION"
BIN="$OUT_DIR/helm"

log() { printf '[k8x-helm %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

grep -q "helm.sh/helm/v3 $HELM_VERSION\$" "$HELM_DIR/helm-build/go.mod" \
  || die "helm-build/go.mod does not pin helm.sh/helm/v3 $HELM_VERSION"

if [[ -x $BIN ]]; then
  log "helm $HELM_VERSION cached in $BIN"
  echo "$BIN"
  exit 0
fi

GO=""
for g in /usr/local/go/bin/go "$(command -v go 2>/dev/null || true)"; do
  [[ -n $g && -x $g ]] && { GO=$g; break; }
done
[[ -n $GO ]] || die "Go toolchain not found (need Go >= 1.26 at /usr/local/go or on PATH)"

mkdir -p "$OUT_DIR"
# Two builds at once (e.g. two test sessions) would only waste CPU: serialise.
exec 9>"$OUT_DIR/.lock"
flock -w 1800 9 || die "could not take $OUT_DIR/.lock"
if [[ -x $BIN ]]; then
  log "helm $HELM_VERSION built by a concurrent run: $BIN"
  echo "$BIN"
  exit 0
fi

log "building helm $HELM_VERSION (go build, a few minutes on a cold Go cache)"
start=$SECONDS
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
# As helm's Makefile: the Kubernetes version `helm template`/`lint` assume
# comes from the k8s.io/client-go it is built with (v0.MINOR.x -> 1.MINOR).
kminor="$(sed -n 's|^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*|\1|p' "$HELM_DIR/helm-build/go.mod")"
[[ -n $kminor ]] || die "k8s.io/client-go not found in helm-build/go.mod"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$kminor"
done
(cd "$HELM_DIR/helm-build" && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 \
  "$GO" build -p 2 -trimpath -ldflags "$ldflags" -o "$OUT_DIR/.helm.tmp" helm.sh/helm/v3/cmd/helm)
mv -f "$OUT_DIR/.helm.tmp" "$BIN"
log "built helm $HELM_VERSION in $((SECONDS - start))s: $("$BIN" version --short)"
echo "$BIN"
