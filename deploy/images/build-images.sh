#!/usr/bin/env bash
# Builds the local cluster's base images without any internet registry and
# caches them as archives under $K8X_CACHE_DIR/images/<IMAGES_VERSION>/:
#   localhost:5000/k8x/pause:3.10   sandbox image (deploy/images/pause, static Go)
#   localhost:5000/k8x/busybox:1    Debian busybox-static on an empty rootfs
#   localhost:5000/k8x/python:3     Debian bookworm minbase + python3 (debootstrap)
# Each image is also loaded into podman's local storage so that `podman build
# FROM localhost:5000/k8x/...` works offline. A warm run is a no-op.
# Pushing to the registry and importing into containerd is start.sh's job.
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib/common.sh"
IMAGES_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

mkdir -p "$IMAGES_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/k8x-images.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# archive <name> <image ref> <rootfs dir> [--change ...]...
archive() {
  local name=$1 ref=$2 root=$3; shift 3
  tar --numeric-owner -C "$root" -cf "$WORK/$name.rootfs.tar" .
  podman import -q "$@" "$WORK/$name.rootfs.tar" "$ref" >/dev/null
  rm -f "$IMAGES_DIR/$name.tar"
  podman save -q --format oci-archive -o "$IMAGES_DIR/.$name.tar.tmp" "$ref" >/dev/null
  mv -f "$IMAGES_DIR/.$name.tar.tmp" "$IMAGES_DIR/$name.tar"
  log "image $ref ready ($(du -h "$IMAGES_DIR/$name.tar" | cut -f1), $IMAGES_DIR/$name.tar)"
}

cached() {  # cached <name> <ref>: archive present; make sure podman has it too
  [[ -s "$IMAGES_DIR/$1.tar" ]] || return 1
  podman image exists "$2" || podman load -q -i "$IMAGES_DIR/$1.tar" >/dev/null
  log "image $2 cached ($IMAGES_DIR/$1.tar)"
}

# --- pause ---------------------------------------------------------------
if ! cached pause "$PAUSE_IMAGE"; then
  log "building $PAUSE_IMAGE (static Go pause binary)"
  mkdir -p "$WORK/pause"
  (cd "$IMAGES_SRC/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    "$(find_go)" build -trimpath -ldflags '-s -w' -o "$WORK/pause/pause" .)
  archive pause "$PAUSE_IMAGE" "$WORK/pause" \
    --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535'
fi

# --- busybox -------------------------------------------------------------
if ! cached busybox "$BUSYBOX_IMAGE"; then
  log "building $BUSYBOX_IMAGE from Debian busybox-static"
  [[ -x /bin/busybox ]] || die "busybox-static is not installed (run deploy/local/build.sh)"
  R="$WORK/busybox"
  mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,var/tmp,proc,sys,dev}
  chmod 1777 "$R/tmp" "$R/var/tmp"
  cp /bin/busybox "$R/bin/busybox"
  for applet in $(/bin/busybox --list-full); do
    [[ -e "$R/$applet" ]] || ln -s /bin/busybox "$R/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$R/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
  archive busybox "$BUSYBOX_IMAGE" "$R" \
    --change 'CMD ["sh"]' \
    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin'
fi

# --- python --------------------------------------------------------------
if ! cached python "$PYTHON_IMAGE"; then
  command -v debootstrap >/dev/null || die "debootstrap is not installed (run deploy/local/build.sh)"
  # The machine's own apt configuration names the mirror (never this repository).
  mirror="${K8X_DEBIAN_MIRROR:-$("$IMAGES_SRC/debian-mirror.sh" bookworm)}" || die "no Debian mirror: set K8X_DEBIAN_MIRROR"
  log "building $PYTHON_IMAGE: debootstrap --variant=minbase bookworm + python3 from $mirror (a few minutes)"
  R="$WORK/python"
  debootstrap --variant=minbase --include=python3 bookworm "$R" "$mirror" > "$WORK/debootstrap.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  # Trim what a runtime image does not need.
  rm -rf "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/* "$R"/var/log/* \
         "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/* \
         "$R"/usr/share/locale/* "$R"/debootstrap
  : > "$R/etc/resolv.conf"
  "$R/usr/bin/python3" --version >/dev/null 2>&1 || chroot "$R" python3 --version >/dev/null \
    || die "python3 missing in the bootstrapped rootfs"
  archive python "$PYTHON_IMAGE" "$R" \
    --change 'CMD ["python3"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PYTHONUNBUFFERED=1'
fi
log "base images ready in $IMAGES_DIR"
