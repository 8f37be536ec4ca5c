#!/usr/bin/env bash
# K8X's own least-privilege identity on the local cluster (idempotent):
#   namespace k8x-system, ServiceAccount k8x there, the ClusterRoles k8x and
#   k8x-tenant from deploy/helm/k8x/files/clusterroles.yaml (the one source of
#   K8X's RBAC rules), the admission policy that lets k8x-tenant be bound only
#   in namespaces K8X manages (tenant-policy.yaml next to it), a
#   ClusterRoleBinding of k8x to the ServiceAccount, the
#   Role k8x-local-leases (leader election) in k8x-system, and a long-lived token
#   (a Secret of type kubernetes.io/service-account-token).
# Writes $K8X_STATE_DIR/cluster/k8x.kubeconfig for that ServiceAccount and
# prints its path last. K8X's processes and K8X code under test use it; only
# admin work (the cluster itself, test fixtures) keeps the admin kubeconfig.
#
# Usage: deploy/local/k8x-identity.sh [ADMIN_KUBECONFIG]
#   (default: the kubeconfig of this checkout's cluster, .state/cluster/kubeconfig)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ADMIN="${1:-$CLUSTER_DIR/kubeconfig}"
[[ -s $ADMIN ]] || die "admin kubeconfig $ADMIN missing: start the cluster first (deploy/local/start.sh prints its path)"
command -v kubectl >/dev/null || die "kubectl not on PATH: run deploy/local/build.sh first"
RULES="$REPO_ROOT/deploy/helm/k8x/files/clusterroles.yaml"
POLICY="$REPO_ROOT/deploy/helm/k8x/files/tenant-policy.yaml"
[[ -s $RULES && -s $POLICY ]] || die "$RULES or $POLICY missing"
NS=k8x-system
SA=k8x
OUT="$CLUSTER_DIR/k8x.kubeconfig"
mkdir -p "$CLUSTER_DIR"
with_lock "$CLUSTER_DIR/k8x-identity.lock"

kc() { kubectl --kubeconfig "$ADMIN" --request-timeout=10s "$@"; }

# Server-side apply: several checkouts sharing one cluster may run this at once.
{
  cat <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $NS
  labels: {app.kubernetes.io/name: k8x}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: $SA
  namespace: $NS
  labels: {app.kubernetes.io/name: k8x}
---
apiVersion: v1
kind: Secret
metadata:
  name: $SA-token
  namespace: $NS
  labels: {app.kubernetes.io/name: k8x}
  annotations:
    kubernetes.io/service-account.name: $SA
type: kubernetes.io/service-account-token
---
YAML
  cat "$RULES"
  echo "---"
  cat "$POLICY"
  cat <<YAML
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: k8x
  labels: {app.kubernetes.io/name: k8x}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: k8x}
subjects:
  - {kind: ServiceAccount, name: $SA, namespace: $NS}
---
# Leader election between K8X's processes (the Helm chart grants the same Role).
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: k8x-local-leases
  namespace: $NS
  labels: {app.kubernetes.io/name: k8x}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: k8x-local-leases
  namespace: $NS
  labels: {app.kubernetes.io/name: k8x}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: k8x-local-leases}
subjects:
  - {kind: ServiceAccount, name: $SA, namespace: $NS}
YAML
} | kc apply --server-side --force-conflicts --field-manager=k8x-local-identity -f - >/dev/null

# The token controller fills the Secret in asynchronously.
token=""
for _ in $(seq 1 100); do
  token="$(kc -n "$NS" get secret "$SA-token" -o 'jsonpath={.data.token}' 2>/dev/null || true)"
  [[ -n $token ]] && break
  sleep 0.2
done
[[ -n $token ]] || die "the token controller did not fill Secret $NS/$SA-token (is kube-controller-manager running?)"

server="$(kc config view --raw --minify -o 'jsonpath={.clusters[0].cluster.server}')"
ca="$(kc config view --raw --minify -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}')"
[[ -n $server && -n $ca ]] || die "could not read the server and CA from $ADMIN"
tmp="$(mktemp "$OUT.XXXXXX")"
chmod 600 "$tmp"
cat > "$tmp" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: k8x-local
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: system:serviceaccount:$NS:$SA
  user:
    token: $(printf '%s' "$token" | base64 -d)
contexts:
- name: k8x-local
  context:
    cluster: k8x-local
    user: system:serviceaccount:$NS:$SA
    namespace: $NS
current-context: k8x-local
KCFG
mv -f "$tmp" "$OUT"

who="$(kubectl --kubeconfig "$OUT" --request-timeout=10s auth whoami -o 'jsonpath={.status.userInfo.username}')" \
  || die "the token in $OUT is not accepted by the API server"
[[ $who == "system:serviceaccount:$NS:$SA" ]] || die "$OUT authenticates as $who, not system:serviceaccount:$NS:$SA"
log "K8X's identity: $who (ClusterRoles k8x, k8x-tenant from $RULES); kubeconfig $OUT"
echo "$OUT"
