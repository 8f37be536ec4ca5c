#!/usr/bin/env bash
# Debian packages the tests need beyond the services' and the cluster's own
# (those scripts install theirs). Quiet and fast when everything is present.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

want=(chromium kcat git curl openssh-server iproute2 nodejs)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "system packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
