#!/usr/bin/env bash
# Starts the local single-node Kubernetes cluster (idempotent):
#   pod bridge k8x0 (10.244.0.1/24, no route or masquerade off the machine),
#   docker-registry on 127.0.0.1:5000 (and the same storage behind a login on
#   127.0.0.1:5001, deploy/local/registry-auth.sh), etcd, containerd (own socket/root),
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy.
# Waits until the node is Ready and the `default` ServiceAccount exists, then
# prints the kubeconfig path. State and logs: ${K8X_STATE_DIR:-<repo>/.state}/cluster.
# Run deploy/local/build.sh first (start.sh does not build).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
with_lock "$STATE_DIR/cluster.lock"
source "$LOCAL_DIR/lib/procs.sh"
source "$LOCAL_DIR/lib/pki.sh"

T0=$SECONDS
[[ $(id -u) -eq 0 ]] || die "start.sh must run as root (it runs containerd and the kubelet)"
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [[ -x "$K8S_BIN/$b" ]] || die "$K8S_BIN/$b missing: run deploy/local/build.sh first"
done
ETCD="$ETCD_BIN_DIR/etcd"
[[ -x $ETCD ]] || die "$ETCD missing: run deploy/local/build.sh first"
for t in containerd runc docker-registry htpasswd podman iptables conntrack; do
  command -v "$t" >/dev/null || die "$t not installed: run deploy/local/build.sh first"
done
[[ ${#CONTAINERD_SOCK} -lt 100 ]] || die "containerd socket path too long for a unix socket: $CONTAINERD_SOCK (set K8X_STATE_DIR to a shorter path)"

# One cluster per machine: its ports, bridge and node name are machine-wide.
# When a cluster of another checkout (another K8X_STATE_DIR) is running, use it
# rather than fight it over the ports.
OWNER_FILE=/run/k8x-cluster/state-dir
if [[ -s $OWNER_FILE ]]; then
  other="$(cat "$OWNER_FILE")"
  if [[ $other != "$STATE_DIR" ]] && [[ -s "$other/cluster/run/kube-apiserver.pid" ]] \
      && kill -0 "$(cat "$other/cluster/run/kube-apiserver.pid")" 2>/dev/null; then
    [[ -s "$other/cluster/kubeconfig" ]] || die "a local cluster of $other is running but has no kubeconfig; stop it with $other/../deploy/local/stop.sh"
    log "the local cluster of $other is already running on this machine: using it"
    log "kubeconfig: $other/cluster/kubeconfig"
    echo "$other/cluster/kubeconfig"
    exit 0
  fi
fi
mkdir -p "$(dirname "$OWNER_FILE")"
echo "$STATE_DIR" > "$OWNER_FILE"

mkdir -p "$CLUSTER_DIR" "$LOG_DIR" "$RUN_DIR"
ensure_pki
KUBECONFIG_FILE="$CLUSTER_DIR/kubeconfig"
kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" --request-timeout=5s "$@"; }

# --- network ---------------------------------------------------------------
# The bridge is ours: the apiserver, the kubelet and the pods' gateway live on
# 10.244.0.1. Pods get routes only to 10.244.0.0/24 and the Service range via
# 10.244.0.1 (see the CNI config); the FORWARD guard drops anything a pod would
# try to route through this host.
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
  log "created bridge $BRIDGE"
fi
[[ "$(ip -4 addr show dev "$BRIDGE")" == *"inet $BRIDGE_IP/"* ]] || ip addr add "$BRIDGE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
# The guard sits in the mangle table so that nothing kube-proxy adds to the
# filter table's FORWARD chain can come before it.
iptables -w -t mangle -N K8X-GUARD 2>/dev/null || true
iptables -w -t mangle -F K8X-GUARD
iptables -w -t mangle -A K8X-GUARD -i "$BRIDGE" -o "$BRIDGE" -j RETURN
iptables -w -t mangle -A K8X-GUARD -i "$BRIDGE" -j DROP
iptables -w -t mangle -A K8X-GUARD -o "$BRIDGE" -j DROP
iptables -w -t mangle -C FORWARD -j K8X-GUARD 2>/dev/null || iptables -w -t mangle -I FORWARD 1 -j K8X-GUARD
# Pod -> Service ClusterIP -> pod is routed by this host (kube-proxy's DNAT),
# so the bridge must forward; only the bridge (eth0 stays off), and the guard
# above keeps it bridge-to-bridge.
sysctl -qw "net.ipv4.conf.$BRIDGE.forwarding=1"

# --- registry --------------------------------------------------------------
mkdir -p "$CLUSTER_DIR/registry/data"
write_file "$CLUSTER_DIR/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $CLUSTER_DIR/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  headers:
    X-Content-Type-Options: [nosniff]
EOF
ensure_port_free registry "127.0.0.1:$REGISTRY_PORT"
start_bg registry "$(command -v docker-registry)" serve "$CLUSTER_DIR/registry/config.yml"
wait_for "registry on 127.0.0.1:$REGISTRY_PORT" 30 registry curl -sf "http://127.0.0.1:$REGISTRY_PORT/v2/"

seed_image() {  # seed_image <cache archive name> <ref>
  local name=$1 ref=$2 repo tag
  repo="${ref#*/}"; tag="${repo##*:}"; repo="${repo%:*}"
  if curl -sf -o /dev/null -I \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
      "http://127.0.0.1:$REGISTRY_PORT/v2/$repo/manifests/$tag"; then
    return 0
  fi
  [[ -s "$IMAGES_DIR/$name.tar" ]] || die "$IMAGES_DIR/$name.tar missing: run deploy/local/build.sh"
  podman image exists "$ref" || podman load -q -i "$IMAGES_DIR/$name.tar" >/dev/null
  podman push -q --tls-verify=false "$ref" >/dev/null
  log "pushed $ref to the local registry"
}
seed_image pause "$PAUSE_IMAGE"
seed_image busybox "$BUSYBOX_IMAGE"
seed_image python "$PYTHON_IMAGE"
# The same storage behind a login on $REGISTRY_AUTH (it also writes containerd's certs.d entry).
"$LOCAL_DIR/registry-auth.sh"

# --- etcd ------------------------------------------------------------------
mkdir -p "$CLUSTER_DIR/etcd"
chmod 700 "$CLUSTER_DIR/etcd"
ensure_port_free etcd "127.0.0.1:$ETCD_CLIENT_PORT"
start_bg etcd "$ETCD" --name k8x --data-dir "$CLUSTER_DIR/etcd/data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "k8x=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
  --quota-backend-bytes 2147483648 --auto-compaction-retention 1h --log-level warn

# --- containerd ------------------------------------------------------------
CTD="$CLUSTER_DIR/containerd"
mkdir -p "$CTD/opt" "$CLUSTER_DIR/cni/net.d" "$CLUSTER_DIR/cni/ipam"
containerd_plain_http_host "$REGISTRY" "$REGISTRY_PORT"
write_file "$CLUSTER_DIR/cni/net.d/10-k8x.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "k8x",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": false,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CLUSTER_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$BRIDGE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR", "gw": "$BRIDGE_IP"}]
      }
    }
  ]
}
EOF
containerd config default | sed \
  -e "s#^root = .*#root = \"$CONTAINERD_ROOT\"#" \
  -e "s#^state = .*#state = \"$CONTAINERD_STATE\"#" \
  -e "s#address = \"/run/containerd/containerd.sock\"#address = \"$CONTAINERD_SOCK\"#" \
  -e "s#sandbox_image = .*#sandbox_image = \"$PAUSE_IMAGE\"#" \
  -e "s#bin_dir = \"/opt/cni/bin\"#bin_dir = \"/usr/lib/cni\"#" \
  -e "s#conf_dir = \"/etc/cni/net.d\"#conf_dir = \"$CLUSTER_DIR/cni/net.d\"#" \
  -e "s#config_path = \"\"#config_path = \"$CTD/certs.d\"#" \
  -e "s#netns_mounts_under_state_dir = false#netns_mounts_under_state_dir = true#" \
  -e "s#path = \"/opt/containerd\"#path = \"$CTD/opt\"#" \
  -e "s#SystemdCgroup = .*#SystemdCgroup = false#" \
  -e "s#restrict_oom_score_adj = false#restrict_oom_score_adj = true#" \
  | write_file "$CTD/config.toml"
grep -q "$CONTAINERD_SOCK" "$CTD/config.toml" || die "could not patch containerd's default config"
start_bg containerd "$(command -v containerd)" --config "$CTD/config.toml" --log-level warn
CTR=(ctr --address "$CONTAINERD_SOCK" -n k8s.io)
wait_for "containerd socket" 30 containerd "${CTR[@]}" version
# The sandbox image must never be fetched from the internet: pull it from the
# local registry now so the first pod does not wait for it.
[[ "$("${CTR[@]}" images check "name==$PAUSE_IMAGE" 2>/dev/null)" == *complete* ]] \
  || "${CTR[@]}" images pull --hosts-dir "$CTD/certs.d" "$PAUSE_IMAGE" >/dev/null \
  || die "could not pull $PAUSE_IMAGE into containerd"

# --- kube-apiserver --------------------------------------------------------
wait_for "etcd" 30 etcd curl -sf "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
ensure_port_free kube-apiserver "$BRIDGE_IP:$APISERVER_PORT"
start_bg kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --bind-address="$BRIDGE_IP" --advertise-address="$BRIDGE_IP" --secure-port="$APISERVER_PORT" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --client-ca-file="$PKI/ca.crt" --requestheader-client-ca-file="$PKI/ca.crt" \
  --requestheader-allowed-names=front-proxy-client --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --profiling=false --v=1
wait_for "kube-apiserver /readyz" 90 kube-apiserver \
  curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://$BRIDGE_IP:$APISERVER_PORT/readyz"

# --- controller-manager and scheduler --------------------------------------
start_bg kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$PKI/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" --use-service-account-credentials=true \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --allocate-node-cidrs=false --profiling=false --v=1
start_bg kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$PKI/scheduler.kubeconfig" \
  --authentication-kubeconfig="$PKI/scheduler.kubeconfig" --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1

# --- kubelet ---------------------------------------------------------------
KUBELET_DIR="$CLUSTER_DIR/kubelet"
mkdir -p "$KUBELET_DIR"
write_file "$CLUSTER_DIR/resolv.conf" <<EOF
# The local cluster runs no DNS server: pods resolve nothing but /etc/hosts.
# Reach the host (K8X's event endpoint) by IP at $BRIDGE_IP.
nameserver 127.0.0.1
options ndots:1 timeout:1 attempts:1
EOF
write_file "$CLUSTER_DIR/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $BRIDGE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
cgroupDriver: cgroupfs
cgroupsPerQOS: true
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
imageServiceEndpoint: unix://$CONTAINERD_SOCK
failSwapOn: false
resolvConf: $CLUSTER_DIR/resolv.conf
clusterDomain: cluster.local
serializeImagePulls: false
maxPods: 110
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
rotateCertificates: false
serverTLSBootstrap: false
logging:
  format: text
EOF
is_running kubelet && KUBELET_T0=0 || KUBELET_T0=$(( $(date +%s) - 1 ))
ensure_port_free kubelet "127.0.0.1:10250"
ensure_port_free kubelet "127.0.0.1:10248"
start_bg kubelet "$K8S_BIN/kubelet" \
  --config="$CLUSTER_DIR/kubelet-config.yaml" --kubeconfig="$PKI/kubelet.kubeconfig" \
  --root-dir="$KUBELET_DIR" --cert-dir="$KUBELET_DIR/pki" \
  --hostname-override="$NODE_NAME" --node-ip="$BRIDGE_IP" --v=1

# --- kube-proxy (iptables; makes the `kubernetes` Service reachable) --------
write_file "$CLUSTER_DIR/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $PKI/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$BRIDGE_IP/32"]
iptables:
  localhostNodePorts: false
  masqueradeAll: false
conntrack:
  maxPerCore: 0
  min: 0
EOF
start_bg kube-proxy "$K8S_BIN/kube-proxy" --config="$CLUSTER_DIR/kube-proxy-config.yaml" --v=1

write_file "$CLUSTER_DIR/crictl.yaml" <<EOF
runtime-endpoint: unix://$CONTAINERD_SOCK
image-endpoint: unix://$CONTAINERD_SOCK
timeout: 30
EOF

# --- wait until usable -----------------------------------------------------
# Ready must come from this kubelet: right after a restart the node object
# still says Ready from before, so the heartbeat must be newer than its start.
node_ready() {
  local out status beat
  curl -sf http://127.0.0.1:10248/healthz >/dev/null || return 1
  out="$(kc get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' 2>/dev/null)" || return 1
  read -r status beat <<<"$out"
  [[ $status == True && -n $beat ]] && (( $(date -d "$beat" +%s) >= KUBELET_T0 ))
}
require_running kube-controller-manager kube-scheduler kubelet kube-proxy
wait_for "node $NODE_NAME Ready" 120 kubelet node_ready
wait_for "ServiceAccount default/default" 60 kube-controller-manager kc -n default get serviceaccount default
require_running kube-scheduler kube-proxy

log "cluster ready in $((SECONDS - T0))s: kubernetes v$K8S_VERSION, node $NODE_NAME, pods on $BRIDGE ($BRIDGE_IP), registry $REGISTRY"
log "kubeconfig: $KUBECONFIG_FILE   (eval \"\$(deploy/local/env.sh)\" to use it)"
echo "$KUBECONFIG_FILE"
