#!/usr/bin/env bash
# `make examples`: builds every example service (each directory under examples/ with a
# Containerfile) into localhost:5000/k8x/examples/<name>:1 and :<content hash>, offline:
#   - the language helper from sdk/ is copied into the build context (not kept twice in git),
#   - Go is compiled on the host (CGO_ENABLED=0, GOPROXY=off) into a static binary,
#   - Node.js is Debian's `nodejs` package in a Debian bookworm minbase rootfs made on the host
#     with debootstrap (like the Python base image), cached as an archive; built once,
#   - `podman build --network none` FROM the local base images (deploy/images/build-images.sh).
# An example is rebuilt only when its content hash (its directory, its helper, this script,
# the toolchain version) changes; stamps live under $K8X_CACHE_DIR/examples/.
# Needs the local registry (the local cluster: `make cluster` or `make up`).
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/local/lib/common.sh"
log() { printf '[k8x-examples %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

EXAMPLES="$REPO_ROOT/examples"
SDK="$REPO_ROOT/sdk"
STAMPS="$CACHE_DIR/examples"
TAG=1
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
T0=$SECONDS

mkdir -p "$STAMPS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/k8x-examples.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

curl -sf -o /dev/null "$REGISTRY_URL/v2/" \
  || die "the local registry ($REGISTRY) does not answer: start the local cluster first (make cluster, or make up)"
# The base images (busybox, python) must be in podman's storage; cached, so a no-op when warm.
(with_lock "$CACHE_DIR/build.lock" && "$REPO_ROOT/deploy/images/build-images.sh") \
  || die "base images missing: deploy/images/build-images.sh failed (run it to see why)"

kind_of() {  # kind_of DIR: go | node | python | shell
  if [[ -f $1/go.mod ]]; then echo go
  elif compgen -G "$1/*.js" >/dev/null; then echo node
  elif compgen -G "$1/*.py" >/dev/null; then echo python
  elif compgen -G "$1/*.sh" >/dev/null; then echo shell
  else die "$1: cannot tell the language (no go.mod, *.js, *.py or *.sh)"; fi
}

content_hash() {  # content_hash DIR KIND: what the image is made of
  local dir=$1 kind=$2
  {
    (cd "$REPO_ROOT" && find "${dir#"$REPO_ROOT"/}" "sdk/$kind" examples/build.sh -type f \
      ! -name '*_test.go' ! -name '*.test.js' -print0 | sort -z | xargs -0 sha256sum)
    echo "images=$IMAGES_VERSION"
    case $kind in
      go) "$(find_go)" version ;;
      node) stat -c 'node-base %s %Y' "$NODE_ARCHIVE" ;;
    esac
  } | sha256sum | cut -c1-16
}

digest() {  # digest NAME REF: the registry's manifest digest, or nothing
  curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "$REGISTRY_URL/v2/k8x/examples/$1/manifests/$2" 2>/dev/null \
    | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *//p'; true
}

NODE_BASE="$REGISTRY/k8x/examples/node-base:bookworm"
NODE_ARCHIVE="$STAMPS/node-base-bookworm.tar"

node_base() {  # Debian bookworm minbase + Debian's nodejs, in podman's storage as $NODE_BASE
  if [[ -s $NODE_ARCHIVE ]]; then
    podman image exists "$NODE_BASE" || podman load -q -i "$NODE_ARCHIVE" >/dev/null
    return 0
  fi
  command -v debootstrap >/dev/null || die "debootstrap is not installed (run deploy/local/build.sh)"
  local mirror root="$WORK/node-base"
  # The host's own Debian mirror (no registry host name is written down here).
  mirror="$(sed -n 's/^URIs:[[:space:]]*\(\S*\/debian\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/debian.sources \
    2>/dev/null | head -1)"
  mirror="${K8X_DEBIAN_MIRROR:-$mirror}"
  [[ -n $mirror ]] || die "no Debian mirror: set K8X_DEBIAN_MIRROR"
  log "node base: debootstrap --variant=minbase --include=nodejs bookworm from $mirror (a few minutes, once)"
  debootstrap --variant=minbase --include=nodejs bookworm "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap of the node base failed"; }
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/debootstrap
  : > "$root/etc/resolv.conf"
  chroot "$root" node --version >/dev/null || die "node does not run in the bootstrapped rootfs"
  tar --numeric-owner -C "$root" -cf "$WORK/node-base.tar" .
  podman import -q --change 'CMD ["node"]' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV LANG=C.UTF-8' "$WORK/node-base.tar" "$NODE_BASE" >/dev/null
  podman save -q --format oci-archive -o "$NODE_ARCHIVE.tmp" "$NODE_BASE" && mv -f "$NODE_ARCHIVE.tmp" "$NODE_ARCHIVE"
  rm -rf "$root" "$WORK/node-base.tar"
  log "node base ready: $NODE_ARCHIVE ($(du -h "$NODE_ARCHIVE" | cut -f1))"
}

context_fill() {  # context_fill DIR KIND CTX
  local dir=$1 kind=$2 ctx=$3
  cp -a "$dir/." "$ctx/"
  case $kind in
    python) cp "$SDK/python/k8x_sdk.py" "$ctx/" ;;
    shell) cp "$SDK/shell/k8x.sh" "$ctx/" ;;
    node) cp "$SDK/node/k8x.js" "$ctx/" ;;
    go)
      mkdir -p "$CACHE_DIR/go-build"
      (cd "$dir" && GOCACHE="$CACHE_DIR/go-build" GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
        "$(find_go)" build -trimpath -ldflags '-s -w' -o "$ctx/app" .) || die "$dir: go build failed"
      ;;
  esac
}

refs=()
built=0
while IFS= read -r containerfile; do
  dir="$(dirname "$containerfile")"
  name="$(basename "$dir")"
  kind="$(kind_of "$dir")"
  [[ $kind != node ]] || node_base  # first: the base archive is part of the hash
  hash="$(content_hash "$dir" "$kind")"
  ref="$REGISTRY/k8x/examples/$name"
  have="$(digest "$name" "$hash")"
  if [[ -n $have && "$(cat "$STAMPS/$name" 2>/dev/null)" == "$hash" && "$(digest "$name" "$TAG")" == "$have" ]]; then
    log "$name ($kind): up to date ($ref:$hash)"
  else
    log "$name ($kind): building $ref:$TAG ($hash)"
    t=$SECONDS
    ctx="$WORK/$name"
    mkdir -p "$ctx"
    context_fill "$dir" "$kind" "$ctx"
    podman build -q --network none --pull=never -t "$ref:$TAG" -t "$ref:$hash" -f "$ctx/Containerfile" "$ctx" \
      >"$WORK/$name.log" 2>&1 || { cat "$WORK/$name.log" >&2; die "$name: podman build failed"; }
    podman push -q --tls-verify=false "$ref:$hash" >/dev/null
    podman push -q --tls-verify=false "$ref:$TAG" >/dev/null
    echo "$hash" > "$STAMPS/$name"
    # Older builds of this example stay in the registry by hash; podman's copies can go.
    podman images --format '{{.Repository}}:{{.Tag}}' "$ref" | grep -vx -e "$ref:$TAG" -e "$ref:$hash" \
      | xargs -r podman rmi -f >/dev/null 2>&1 || true
    built=$((built + 1))
    log "$name: pushed in $((SECONDS - t))s"
  fi
  refs+=("$ref:$TAG  ($ref:$hash)")
done < <(find "$EXAMPLES" -mindepth 2 -name Containerfile | sort)

log "examples ready in $((SECONDS - T0))s ($built built, $((${#refs[@]} - built)) up to date):"
printf '  %s\n' "${refs[@]}"
