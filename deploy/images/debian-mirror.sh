#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt is configured with (the first
# URI serving the given suite), read from <apt dir>/sources.list,
# <apt dir>/sources.list.d/*.list (one-line format) and *.sources (deb822).
# K8X never names a mirror itself: the machine's configuration decides.
# usage: debian-mirror.sh [suite (bookworm)] [apt dir (/etc/apt)]
set -euo pipefail
suite="${1:-bookworm}"
apt_dir="${2:-/etc/apt}"
files=()
[[ -f "$apt_dir/sources.list" ]] && files+=("$apt_dir/sources.list")
for f in "$apt_dir"/sources.list.d/*.list "$apt_dir"/sources.list.d/*.sources; do
  [[ -f "$f" ]] && files+=("$f")
done
((${#files[@]})) || { echo "no apt sources under $apt_dir" >&2; exit 1; }
found="$(for f in "${files[@]}"; do
  if [[ "$f" == *.sources ]]; then
    # deb822: blank-line separated stanzas; "Enabled: no" stanzas are skipped.
    awk -v suite="$suite" '
      function flush() {
        if (types ~ /(^|[[:space:]])deb([[:space:]]|$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") && uri != "") print uri
        types = ""; suites = ""; uri = ""; enabled = ""
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      tolower($1) == "types:" { $1 = ""; types = $0 }
      tolower($1) == "suites:" { $1 = ""; suites = $0; gsub(/^[[:space:]]+|[[:space:]]+$/, "", suites) }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "enabled:" { enabled = tolower($2) }
      END { flush() }
    ' "$f"
  else
    # one-line: deb [options] URI suite components...
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
        if ($(i + 1) == suite) print $i
      }
    ' "$f"
  fi
done)"
[[ -n "$found" ]] || { echo "no apt source for suite $suite under $apt_dir (set K8X_DEBIAN_MIRROR)" >&2; exit 1; }
echo "${found%%$'\n'*}"
