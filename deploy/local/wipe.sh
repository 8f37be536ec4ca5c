#!/usr/bin/env bash
# Stops the local cluster and removes its state (etcd data, certificates,
# kubeconfig, containerd root, registry content, logs), its bridge and its
# iptables rules. The build cache ($K8X_CACHE_DIR) is kept.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
with_lock "$STATE_DIR/cluster.lock"
source "$LOCAL_DIR/lib/procs.sh"
[[ $(id -u) -eq 0 ]] || die "wipe.sh must run as root"

"$LOCAL_DIR/stop.sh"

# The bridge, iptables rules and kubepods cgroups are machine-wide: leave them
# to a running cluster of another checkout.
OWNER_FILE=/run/k8x-cluster/state-dir
other="$(cat "$OWNER_FILE" 2>/dev/null || true)"
if [[ -n $other && $other != "$STATE_DIR" && -s "$other/cluster/run/kube-apiserver.pid" ]] \
    && kill -0 "$(cat "$other/cluster/run/kube-apiserver.pid")" 2>/dev/null; then
  log "the cluster of $other is running: keeping the bridge and iptables rules"
  SKIP_NET=1
else
  SKIP_NET=
  rm -f "$OWNER_FILE"
fi

# Remove what kube-proxy and start.sh put into iptables.
if [[ -z $SKIP_NET ]]; then
if [[ -x "$K8S_BIN/kube-proxy" ]]; then
  "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
fi
# ...and the kubelet's own chains (it recreates them when it starts).
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for hook in INPUT OUTPUT; do
    while "$ipt" -w -D "$hook" -j KUBE-FIREWALL 2>/dev/null; do :; done
  done
  for table in filter nat mangle; do
    for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
      if "$ipt" -w -t "$table" -F "$chain" 2>/dev/null; then "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true; fi
    done
  done
done
while iptables -w -t mangle -D FORWARD -j K8X-GUARD 2>/dev/null; do :; done
iptables -w -t mangle -F K8X-GUARD 2>/dev/null || true
iptables -w -t mangle -X K8X-GUARD 2>/dev/null || true
if ip link del "$BRIDGE" 2>/dev/null; then log "removed bridge $BRIDGE"; fi
fi

if [[ -d $CLUSTER_DIR ]]; then
  # Kubelet volumes, netns and container rootfs mounts live under the state dir.
  awk -v d="$CLUSTER_DIR" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$CLUSTER_DIR"
  log "removed $CLUSTER_DIR"
fi
# Empty cgroups the kubelet created (only removable once no process is left).
# ...and the containers' log files the kubelet keeps in /var/log/pods.
if [[ -z $SKIP_NET ]]; then
  rm -rf --one-file-system /var/log/pods /var/log/containers
  for c in /sys/fs/cgroup/*/kubepods; do
    if [[ -d $c ]]; then find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
fi
log "cluster wiped (build cache kept in $CACHE_DIR)"
