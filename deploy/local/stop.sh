#!/usr/bin/env bash
# Stops the local cluster: kubelet first, then every pod sandbox is stopped
# through the CRI (containers killed, pod network torn down, IPs released),
# then the control plane, etcd, containerd and the registry. Cluster state
# (etcd data, certificates, registry content) is kept: start.sh resumes it.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
with_lock "$STATE_DIR/cluster.lock"
source "$LOCAL_DIR/lib/procs.sh"
[[ $(id -u) -eq 0 ]] || die "stop.sh must run as root"

stop_proc kubelet 30
if is_running containerd && [[ -x "$K8S_BIN/crictl" ]]; then
  CRICTL=("$K8S_BIN/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --image-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s)
  pods="$("${CRICTL[@]}" pods -q --state ready 2>/dev/null || true)"
  if [[ -n $pods ]]; then
    log "stopping $(wc -w <<<"$pods") pod sandbox(es)"
    # shellcheck disable=SC2086
    "${CRICTL[@]}" stopp $pods >/dev/null 2>&1 || log "some pod sandboxes did not stop cleanly"
  fi
fi
stop_procs 20 kube-proxy kube-scheduler kube-controller-manager
# Open watches (e.g. K8X's pod watcher) can hold its graceful shutdown for a
# minute; it keeps no state of its own, so give it a few seconds only.
stop_proc kube-apiserver 8
stop_procs 30 etcd containerd
# Shims of our containerd (found by its socket path) that outlived it.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true); do
  kill -TERM "$pid" 2>/dev/null || true
done
stop_procs 10 registry registry-auth
log "cluster stopped (state kept in $CLUSTER_DIR; deploy/local/start.sh resumes it, deploy/local/wipe.sh removes it)"
