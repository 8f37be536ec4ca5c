#!/usr/bin/env bash
# Install the backing services' software (idempotent, fast when warm):
#   - Debian packages: postgresql, redis-server (+ java/maven if missing)
#   - Apache Kafka jars from Maven Central into $K8X_CACHE_DIR/kafka/<version>/libs
# Usage: deploy/services/install.sh [postgres|redis|kafka|all]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t SERVICES < <(expand_services "${1:-all}")

need_pkgs=()
pkg_missing() { ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

for s in "${SERVICES[@]}"; do
  case "$s" in
    postgres) pg_bindir >/dev/null || need_pkgs+=(postgresql) ;;
    redis)    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || need_pkgs+=(redis-server redis-tools) ;;
    kafka)    command -v java >/dev/null || need_pkgs+=(openjdk-17-jre-headless)
              kafka_jars_ready || command -v mvn >/dev/null || need_pkgs+=(maven) ;;
  esac
done
command -v ss >/dev/null || need_pkgs+=(iproute2)
if [[ "$(id -u)" == 0 ]] && ! command -v runuser >/dev/null; then need_pkgs+=(util-linux); fi

if (( ${#need_pkgs[@]} )); then
  say "apt: installing ${need_pkgs[*]}"
  [[ "$(id -u)" == 0 ]] || die "need root to apt-get install ${need_pkgs[*]} (or install them yourself)"
  # Debian packages start their own system-wide instances (postgres on 5432,
  # redis on 6379 — which would collide with ours). Forbid that for the
  # duration of the install unless a policy is already in place.
  cleanup_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, created by k8x deploy/services/install.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    cleanup_policy=1
    trap '[[ -n "$cleanup_policy" ]] && rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
  if ! DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install "${need_pkgs[@]}"; then
    say "apt: install failed, refreshing package lists and retrying"
    apt-get -q -o DPkg::Lock::Timeout=600 update
    DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install "${need_pkgs[@]}"
  fi
  if [[ -n "$cleanup_policy" ]]; then rm -f /usr/sbin/policy-rc.d; cleanup_policy=""; fi
else
  say "apt: packages already installed"
fi

for s in "${SERVICES[@]}"; do
  [[ "$s" == kafka ]] || continue
  if kafka_jars_ready; then
    say "kafka: jars for $KAFKA_VERSION cached in $KAFKA_LIBS"
    continue
  fi
  say "kafka: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central (first run only)…"
  mkdir -p "$KAFKA_CACHE" "$KAFKA_M2"
  tmp="$KAFKA_CACHE/libs.tmp.$$"
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  # Work on a copy of the pom so maven writes no target/ dir into the repo.
  workdir="$KAFKA_CACHE/pom"
  mkdir -p "$workdir"
  cp "$K8X_SERVICES_DIR/kafka/pom.xml" "$workdir/pom.xml"
  if ! mvn -q -B -f "$workdir/pom.xml" \
      -Dmaven.repo.local="$KAFKA_M2" \
      dependency:copy-dependencies \
      -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$KAFKA_CACHE/maven.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$KAFKA_CACHE/maven.log" | tail -n 40 >&2
    die "kafka: maven could not fetch the jars (full log: $KAFKA_CACHE/maven.log)"
  fi
  n="$(ls "$tmp"/*.jar 2>/dev/null | wc -l)"
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || die "kafka: kafka_2.13-$KAFKA_VERSION.jar missing after maven run"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  kafka_pom_hash >"$KAFKA_CACHE/.complete"
  say "kafka: $n jars in $KAFKA_LIBS ($(du -sh "$KAFKA_LIBS" | cut -f1))"
done
