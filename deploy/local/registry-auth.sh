#!/usr/bin/env bash
# The local registry's storage behind a login: a second docker-registry on
# 127.0.0.1:$REGISTRY_AUTH_PORT (images as $REGISTRY_AUTH/...) with htpasswd
# (bcrypt) auth, serving the same storage as the plain registry on :$REGISTRY_PORT,
# so every image pushed there can also be pulled here, with credentials only.
# Tests use it for a project's image pull secret.
#
# The login is generated once into $CLUSTER_DIR/registry-auth/credentials
# (REGISTRY_AUTH_USERNAME=..., REGISTRY_AUTH_PASSWORD=...; mode 600, under .state/,
# never committed). Writes containerd's certs.d entry for $REGISTRY_AUTH (plain
# HTTP); containerd reads certs.d at every pull, so this is safe to run while the
# cluster is up. Idempotent: run by start.sh after the plain registry is up.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
with_lock "$STATE_DIR/cluster.lock"
source "$LOCAL_DIR/lib/procs.sh"

for t in docker-registry htpasswd curl; do
  command -v "$t" >/dev/null || die "$t not installed: run deploy/local/build.sh first"
done
[[ -d "$CLUSTER_DIR/registry/data" ]] || die "no registry storage at $CLUSTER_DIR/registry/data: run deploy/local/start.sh"

AUTH_DIR="$CLUSTER_DIR/registry-auth"
CREDENTIALS="$AUTH_DIR/credentials"
mkdir -p "$AUTH_DIR"
chmod 700 "$AUTH_DIR"

if [[ ! -s $CREDENTIALS ]]; then
  (umask 077 && printf 'REGISTRY_AUTH_USERNAME=k8x\nREGISTRY_AUTH_PASSWORD=%s\n' "$(openssl rand -hex 16)" > "$CREDENTIALS.new")
  mv -f "$CREDENTIALS.new" "$CREDENTIALS"
  rm -f "$AUTH_DIR/htpasswd"
  log "generated the login of $REGISTRY_AUTH in $CREDENTIALS"
fi
username="$(sed -n 's/^REGISTRY_AUTH_USERNAME=//p' "$CREDENTIALS")"
password="$(sed -n 's/^REGISTRY_AUTH_PASSWORD=//p' "$CREDENTIALS")"
[[ -n $username && -n $password ]] || die "$CREDENTIALS is incomplete: delete it and run this again"
# The htpasswd file follows the credentials (a new login means a new file; the
# registry reads it at start, so it is restarted below when the file changed).
if [[ ! -s "$AUTH_DIR/htpasswd" ]] || ! htpasswd -vb "$AUTH_DIR/htpasswd" "$username" "$password" >/dev/null 2>&1; then
  (umask 077 && htpasswd -cbB "$AUTH_DIR/htpasswd.new" "$username" "$password" >/dev/null)
  mv -f "$AUTH_DIR/htpasswd.new" "$AUTH_DIR/htpasswd"
  stop_proc registry-auth
fi

mkdir -p "$AUTH_DIR/conf"
before="$(cat "$AUTH_DIR/conf/config.yml" 2>/dev/null || true)"
write_file "$AUTH_DIR/conf/config.yml" <<CONF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $CLUSTER_DIR/registry/data
  # The plain registry on :$REGISTRY_PORT owns this storage; this one only serves it.
  maintenance:
    readonly:
      enabled: true
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$REGISTRY_AUTH_PORT
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: k8x-local
    path: $AUTH_DIR/htpasswd
CONF
if [[ $before != "$(cat "$AUTH_DIR/conf/config.yml")" ]]; then
  stop_proc registry-auth
fi

auth_answers() {  # the registry answers, and asks for a login
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$REGISTRY_AUTH_PORT/v2/")" == 401 ]]
}
ensure_port_free registry-auth "127.0.0.1:$REGISTRY_AUTH_PORT"
start_bg registry-auth "$(command -v docker-registry)" serve "$AUTH_DIR/conf/config.yml"
wait_for "registry with a login on 127.0.0.1:$REGISTRY_AUTH_PORT" 30 registry-auth auth_answers

containerd_plain_http_host "$REGISTRY_AUTH" "$REGISTRY_AUTH_PORT"
log "registry $REGISTRY_AUTH (login in $CREDENTIALS) serves the storage of $REGISTRY"
