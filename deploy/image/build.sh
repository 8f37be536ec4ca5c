#!/usr/bin/env bash
# Builds K8X's OCI image (or the chart's Redis image) with podman, offline,
# and pushes it to the local registry:
#   deploy/image/build.sh [k8x]   localhost:5000/k8x/k8x:<hash>
#   deploy/image/build.sh redis   localhost:5000/k8x/redis:<hash>
# <hash> covers requirements.txt, the source files the image carries (git
# ls-files, working-tree content) and this directory, so an unchanged tree is
# not rebuilt: a warm run only asks the registry and prints the ref.
# Wheels are fetched/built on the host (pip wheel) into
# $K8X_CACHE_DIR/wheels/<hash of the runtime requirements>; the build itself
# runs with --network none. Progress goes to stderr; the ref is printed last.
set -euo pipefail
IMAGE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$IMAGE_DIR/../.." && pwd)"
CACHE_DIR="${K8X_CACHE_DIR:-$HOME/.cache/k8x}"
REGISTRY="${K8X_REGISTRY:-localhost:5000}"
# shellcheck disable=SC1090
source <(sed -e 's/[[:space:]]*#.*$//' "$REPO/deploy/local/versions.env" | grep '=')
BASE_IMAGE="$REGISTRY/k8x/python:3"
BASE_ARCHIVE="$CACHE_DIR/images/$IMAGES_VERSION/python.tar"
PIP_VERSION=25.3
# The directories the image runs from (tests, docs and deploy scripts stay out).
SRC_PATHS=(manage.py k8x k8x_core console worker templates static)
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)

log() { printf '[k8x-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

what="${1:-k8x}"
case "$what" in k8x|redis) ;; *) die "usage: $0 [k8x|redis]" ;; esac

# Tracked and untracked-but-not-ignored files, as in the working tree.
src_files() { git -C "$REPO" ls-files --cached --others --exclude-standard -- "${SRC_PATHS[@]}" | sort -u; }

runtime_requirements() {  # requirements.txt up to its "Tests and checks" section, plus the image's extras
  { awk '/^# Tests and checks/{exit} {print}' "$REPO/requirements.txt"; cat "$IMAGE_DIR/requirements-image.txt"; } \
    | grep -Ev '^\s*(#|$)'
}

content_hash() {  # content_hash <file>... (paths relative to $REPO): prints 16 hex digits
  (cd "$REPO" && for f in "$@"; do [[ -f $f ]] && printf '%s %s\n' "$(sha256sum <"$f" | cut -c1-64)" "$f"; done) \
    | { cat; echo "images=$IMAGES_VERSION pip=$PIP_VERSION"; } | sha256sum | cut -c1-16
}

registry_has() {  # registry_has <repo> <tag>
  curl -sf -o /dev/null -I \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/$1/manifests/$2"
}

ensure_base() {
  "${PODMAN[@]}" image exists "$BASE_IMAGE" && return 0
  [[ -s $BASE_ARCHIVE ]] || die "$BASE_ARCHIVE missing: build the base images first (make up, or deploy/local/build.sh)"
  log "loading $BASE_IMAGE from $BASE_ARCHIVE"
  "${PODMAN[@]}" load -q -i "$BASE_ARCHIVE" >/dev/null
}

push() {
  curl -sf -o /dev/null "http://$REGISTRY/v2/" || die "the local registry $REGISTRY does not answer (start the cluster: make up)"
  log "pushing $1"
  "${PODMAN[@]}" push -q --tls-verify=false "$1" >/dev/null
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/k8x-image.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------- K8X
wheels() {  # prints the wheel cache directory for the runtime requirements
  local py="$REPO/.venv/bin/python" key dir p IMAGE_PYTHON IMAGE_PYTHON_TAG
  [[ -x $py ]] || die "$py missing: run deploy/bootstrap.sh"
  IMAGE_PYTHON="$("${PODMAN[@]}" run --rm --network none "$BASE_IMAGE" python3 -c 'import platform; print(platform.python_version())')"
  IMAGE_PYTHON_TAG="$(cut -d. -f1,2 <<<"$IMAGE_PYTHON" | tr -d .)"
  key="$( { runtime_requirements; echo "pip==$PIP_VERSION python=$IMAGE_PYTHON"; } | sha256sum | cut -c1-16)"
  dir="$CACHE_DIR/wheels/$key"
  if [[ -f $dir/.complete ]]; then
    log "wheels cached in $dir"
  else
    log "fetching wheels for the runtime requirements into $dir (pip download on the host)"
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
    runtime_requirements >"$dir.tmp/requirements-runtime.txt"
    # Binary wheels for the image's interpreter and glibc (markers such as
    # python_full_version < "3.11.3" must be evaluated for it, not the host).
    local -a plat=()
    for p in manylinux1 manylinux2010 manylinux2014 manylinux_2_24 manylinux_2_27 manylinux_2_28 \
             manylinux_2_31 manylinux_2_34 manylinux_2_35 manylinux_2_36; do plat+=(--platform "${p}_x86_64"); done
    "$py" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$dir.tmp" \
      --implementation cp --python-version "$IMAGE_PYTHON" --abi "cp${IMAGE_PYTHON_TAG}" --abi abi3 --abi none "${plat[@]}" \
      "pip==$PIP_VERSION" -r "$dir.tmp/requirements-runtime.txt" >&2 \
      || die "pip download failed (a requirement without a binary wheel for CPython $IMAGE_PYTHON/manylinux?)"
    touch "$dir.tmp/.complete"
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
    log "wheels ready: $(find "$dir" -name '*.whl' | wc -l) files, $(du -sh "$dir" | cut -f1)"
  fi
  echo "$dir"
}

build_k8x() {
  local tag ref wheel_dir t0=$SECONDS
  mapfile -t files < <(src_files)
  [[ ${#files[@]} -gt 0 ]] || die "no source files found under $REPO"
  tag="$(content_hash requirements.txt deploy/image/requirements-image.txt deploy/image/Containerfile deploy/image/build.sh "${files[@]}")"
  ref="$REGISTRY/k8x/k8x:$tag"
  if registry_has k8x/k8x "$tag"; then
    log "image $ref is in the registry (source unchanged)"
    echo "$ref"; return 0
  fi
  if ! "${PODMAN[@]}" image exists "$ref"; then
    ensure_base
    wheel_dir="$(wheels)"
    log "build context: ${#files[@]} source files + wheels"
    mkdir -p "$WORK/ctx/src" "$WORK/ctx/wheels"
    (cd "$REPO" && cp --parents -p "${files[@]}" "$WORK/ctx/src/")
    cp -p "$wheel_dir"/*.whl "$wheel_dir/requirements-runtime.txt" "$WORK/ctx/wheels/"
    log "podman build --network none $ref"
    "${PODMAN[@]}" build -q --network none --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      -f "$IMAGE_DIR/Containerfile" -t "$ref" "$WORK/ctx" >/dev/null \
      || die "podman build failed"
    # Smoke test under an arbitrary UID: the dependencies import and Django loads.
    "${PODMAN[@]}" run --rm --network none --user 123456:0 "$ref" \
      python3 -c 'import django; django.setup(); import confluent_kafka, psycopg, kubernetes, daphne' \
      || die "the image does not start under an arbitrary UID"
    log "built $ref in $((SECONDS - t0))s"
  fi
  push "$ref"
  echo "$ref"
}

# ----------------------------------------------------------------- Redis
REDIS_DEBS=(redis-server redis-tools libjemalloc2 liblzf1 libatomic1)
build_redis() {
  local versions tag ref p deb_dir t0=$SECONDS
  versions="$(for p in "${REDIS_DEBS[@]}"; do printf '%s=%s\n' "$p" "$(apt-cache policy "$p" | sed -n 's/^ *Candidate: //p')"; done)"
  [[ "$versions" != *"=(none)"* && "$versions" != *"="$'\n'* ]] || die "apt-cache knows no candidate for: $versions (apt-get update?)"
  tag="$( { echo "$versions"; content_hash deploy/image/Containerfile.redis; } | sha256sum | cut -c1-16)"
  ref="$REGISTRY/k8x/redis:$tag"
  if registry_has k8x/redis "$tag"; then
    log "image $ref is in the registry"
    echo "$ref"; return 0
  fi
  if ! "${PODMAN[@]}" image exists "$ref"; then
    ensure_base
    deb_dir="$CACHE_DIR/debs/redis-$tag"
    if [[ ! -f $deb_dir/.complete ]]; then
      log "apt-get download ${REDIS_DEBS[*]} into $deb_dir"
      rm -rf "$deb_dir"; mkdir -p "$deb_dir"
      (cd "$deb_dir" && apt-get download -q=2 $(echo "$versions" | tr '\n' ' ') >&2) || die "apt-get download failed"
      touch "$deb_dir/.complete"
    fi
    mkdir -p "$WORK/ctx/rootfs"
    for p in "$deb_dir"/*.deb; do dpkg-deb -x "$p" "$WORK/ctx/rootfs"; done
    rm -rf "$WORK/ctx/rootfs/usr/share/doc" "$WORK/ctx/rootfs/usr/share/man"
    log "podman build --network none $ref"
    "${PODMAN[@]}" build -q --network none --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      -f "$IMAGE_DIR/Containerfile.redis" -t "$ref" "$WORK/ctx" >/dev/null || die "podman build failed"
    log "built $ref in $((SECONDS - t0))s"
  fi
  push "$ref"
  echo "$ref"
}

"build_$what"
