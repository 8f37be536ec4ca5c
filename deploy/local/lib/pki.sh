# Certificates, ServiceAccount keys and kubeconfigs of the local cluster
# (sourced by start.sh after lib/common.sh). Generated once into
# $CLUSTER_DIR/pki; wipe.sh removes them.
# shellcheck shell=bash

PKI="$CLUSTER_DIR/pki"

_sign() {  # _sign <name> <subject> [<subjectAltName>] [server|client]
  local name=$1 subj=$2 san=${3:-} usage=${4:-client} ext="$PKI/$1.ext"
  [[ -s "$PKI/$name.crt" && -s "$PKI/$name.key" ]] && return 0
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ $usage == server ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; else echo "extendedKeyUsage=clientAuth"; fi
    [[ -n $san ]] && echo "subjectAltName=$san"
  } > "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
  chmod 600 "$PKI/$name.key"
}

_kubeconfig() {  # _kubeconfig <file> <cert name> <user>
  local file=$1 cert=$2 user=$3
  cat > "$file" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: k8x-local
  cluster:
    server: https://$BRIDGE_IP:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 < "$PKI/$cert.key")
contexts:
- name: k8x-local
  context:
    cluster: k8x-local
    user: $user
    namespace: default
current-context: k8x-local
KCFG
  chmod 600 "$file"
}

ensure_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  if [[ ! -s "$PKI/ca.crt" ]]; then
    log "generating cluster CA, certificates and ServiceAccount keys in $PKI"
    openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=k8x-local-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/ca.crt" 2>/dev/null
    chmod 600 "$PKI/ca.key"
  fi
  local api_san="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME,IP:127.0.0.1,IP:$BRIDGE_IP,IP:$KUBERNETES_SVC_IP"
  _sign apiserver "/CN=kube-apiserver" "$api_san" server
  _sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  _sign admin "/O=system:masters/CN=kubernetes-admin"
  _sign controller-manager "/CN=system:kube-controller-manager"
  _sign scheduler "/CN=system:kube-scheduler"
  _sign kube-proxy "/CN=system:kube-proxy"
  _sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  _sign kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" "DNS:$NODE_NAME,DNS:localhost,IP:$BRIDGE_IP,IP:127.0.0.1" server
  if [[ ! -s "$PKI/sa.key" ]]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
    chmod 600 "$PKI/sa.key"
  fi
  [[ -s "$CLUSTER_DIR/kubeconfig" ]] || _kubeconfig "$CLUSTER_DIR/kubeconfig" admin kubernetes-admin
  [[ -s "$PKI/controller-manager.kubeconfig" ]] || _kubeconfig "$PKI/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
  [[ -s "$PKI/scheduler.kubeconfig" ]] || _kubeconfig "$PKI/scheduler.kubeconfig" scheduler system:kube-scheduler
  [[ -s "$PKI/kube-proxy.kubeconfig" ]] || _kubeconfig "$PKI/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
  [[ -s "$PKI/kubelet.kubeconfig" ]] || _kubeconfig "$PKI/kubelet.kubeconfig" kubelet "system:node:$NODE_NAME"
  return 0
}
