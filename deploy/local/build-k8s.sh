#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy and kubectl from the k8s.io/kubernetes Go module (pinned in
# versions.env and k8s-build/go.mod) into $K8X_CACHE_DIR/k8s/<version>/bin,
# plus crictl (sigs.k8s.io/cri-tools, CRI_TOOLS_VERSION) used by stop.sh.
# A warm run (all binaries present for this version) is a no-op.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

grep -q "k8s.io/kubernetes v$K8S_VERSION\$" "$LOCAL_DIR/k8s-build/go.mod" \
  || die "k8s-build/go.mod does not pin k8s.io/kubernetes v$K8S_VERSION (see versions.env)"

missing=()
for c in "${COMPONENTS[@]}"; do [[ -x "$K8S_BIN/$c" ]] || missing+=("$c"); done
if [[ ${#missing[@]} -eq 0 && -x "$K8S_BIN/crictl" ]]; then
  log "kubernetes v$K8S_VERSION binaries cached in $K8S_BIN"
  exit 0
fi

GO="$(find_go)"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done

mkdir -p "$K8S_BIN"
cd "$LOCAL_DIR/k8s-build" || die "missing $LOCAL_DIR/k8s-build"
for c in "${missing[@]}"; do
  log "building $c v$K8S_VERSION (go build, this takes several minutes per component on a cold Go cache)"
  start=$SECONDS
  "$GO" build -p 2 -trimpath -ldflags "$ldflags" -o "$K8S_BIN/.$c.tmp" "k8s.io/kubernetes/cmd/$c"
  mv -f "$K8S_BIN/.$c.tmp" "$K8S_BIN/$c"
  log "built $c in $((SECONDS - start))s ($(du -h "$K8S_BIN/$c" | cut -f1))"
done
if [[ ! -x "$K8S_BIN/crictl" ]]; then
  log "building crictl $CRI_TOOLS_VERSION (sigs.k8s.io/cri-tools)"
  tmpbin="$(mktemp -d)"
  (cd "$tmpbin" && GOFLAGS="" GOBIN="$tmpbin" "$GO" install -p 2 -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION")
  mv -f "$tmpbin/crictl" "$K8S_BIN/crictl"
  rm -rf "$tmpbin"
fi
log "kubernetes v$K8S_VERSION binaries ready in $K8S_BIN"
