#!/usr/bin/env bash
# Creates .venv and installs requirements.txt into it (fast when nothing changed).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REPO/requirements.txt" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
step "python: installing requirements into .venv (first run takes a minute)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --disable-pip-version-check -q --upgrade pip
"$VENV/bin/pip" install --disable-pip-version-check -q -r "$REPO/requirements.txt"
echo "$want" > "$stamp"
