#!/usr/bin/env bash
# `make deploy` / `make undeploy`: K8X itself on the local cluster, with Helm.
#   deploy/helm/deploy.sh deploy     build (or reuse) the images and helm, then
#                                    helm upgrade --install k8x deploy/helm/k8x -n k8x-system --wait
#   deploy/helm/deploy.sh undeploy   helm uninstall (the generated Secret and the database stay)
# Needs the cluster `make up` built (deploy/local/start.sh reuses the running
# one), PostgreSQL and Kafka from deploy/services/. Pods reach those at the
# bridge address through deploy/helm/pod_relay.py, which this script runs.
# Environment:
#   K8X_DEPLOY_NAMESPACE  release namespace (k8x-system)
#   K8X_DEPLOY_DATABASE   database created for the in-cluster K8X (k8x_incluster)
#   K8X_POD_RELAY_PORTS   bridge:loopback port pairs relayed for pods ("55432:55432 9094:9094")
#   K8X_HELM_ARGS         extra arguments for helm upgrade (e.g. "--set web.replicas=2")
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

NS="${K8X_DEPLOY_NAMESPACE:-k8x-system}"
RELEASE=k8x
CHART="$REPO/deploy/helm/k8x"
DB_NAME="${K8X_DEPLOY_DATABASE:-k8x_incluster}"
BRIDGE_IP=10.244.0.1
RELAY_PORTS="${K8X_POD_RELAY_PORTS:-55432:55432 9094:9094}"
RELAY_PID="$K8X_STATE_DIR/run/k8x-pod-relay.pid"
RELAY_LOG="$K8X_STATE_DIR/logs/k8x-pod-relay.log"

use_cluster() {
  step "local Kubernetes cluster"
  if [ -z "${KUBECONFIG:-}" ]; then
    # start.sh reuses the running cluster (even another checkout's) and prints its kubeconfig last.
    KUBECONFIG="$("$REPO/deploy/local/start.sh" | tail -n 1)"
  fi
  export KUBECONFIG
  eval "$("$REPO/deploy/local/env.sh" | grep -v '^export KUBECONFIG=')"
  note "kubeconfig: $KUBECONFIG"
  kubectl get --request-timeout=10s node >/dev/null || die "the cluster at $KUBECONFIG does not answer"
  # Pods reach Redis and the web Service through ClusterIPs: the host routes
  # that on the bridge (deploy/local/start.sh sets it too; a cluster started
  # before it did lacks it).
  if [ "$(sysctl -n net.ipv4.conf.k8x0.forwarding 2>/dev/null)" != 1 ]; then
    sysctl -qw net.ipv4.conf.k8x0.forwarding=1 || die "cannot enable forwarding on the bridge k8x0"
    note "enabled forwarding on the bridge k8x0 (pod -> Service -> pod)"
  fi
}

relay_up() {
  if pid_alive "$RELAY_PID"; then
    note "pod relay running (pid $(cat "$RELAY_PID")): $BRIDGE_IP $RELAY_PORTS"
    return 0
  fi
  # shellcheck disable=SC2086  # the port pairs split on purpose
  nohup setsid "$VENV/bin/python" "$REPO/deploy/helm/pod_relay.py" --bind "$BRIDGE_IP" $RELAY_PORTS \
    >>"$RELAY_LOG" 2>&1 </dev/null &
  echo $! >"$RELAY_PID"
  sleep 1
  pid_alive "$RELAY_PID" || { tail -n 5 "$RELAY_LOG" >&2; die "the pod relay did not start (log: $RELAY_LOG)"; }
  note "pod relay started (pid $(cat "$RELAY_PID")): $BRIDGE_IP $RELAY_PORTS -> 127.0.0.1, log $RELAY_LOG"
}

relay_down() {
  if pid_alive "$RELAY_PID"; then
    kill -TERM "$(cat "$RELAY_PID")" 2>/dev/null || true
    note "pod relay stopped"
  fi
  rm -f "$RELAY_PID"
}

check_services() {
  step "backing services as pods see them"
  local pair target
  for pair in $RELAY_PORTS; do
    target="${pair#*:}"
    (exec 3<>"/dev/tcp/127.0.0.1/$target") 2>/dev/null && continue
    if [ "$target" = 9094 ]; then
      die "Kafka has no listener for pods on 127.0.0.1:9094: it was started before deploy/services/kafka/server.properties.in had one; restart it (deploy/services/stop.sh kafka && deploy/services/start.sh kafka)"
    fi
    die "nothing listens on 127.0.0.1:$target (start the services: make up, or deploy/services/start.sh)"
  done
  # The in-cluster K8X has a database of its own (see the README: it must not share runs with `make up`).
  "$VENV/bin/python" - "$DB_NAME" <<'PY'
import sys
import psycopg
name = sys.argv[1]
with psycopg.connect("postgresql://k8x:k8x@127.0.0.1:55432/postgres", autocommit=True) as conn:
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
        conn.execute(f'CREATE DATABASE "{name}" OWNER k8x')
        print(f"    database {name}: created")
    else:
        print(f"    database {name}: exists")
PY
}

cmd_deploy() {
  local t0=$SECONDS image redis_image helm extra=()
  step "python environment"
  "$REPO/deploy/bootstrap.sh" >/dev/null
  use_cluster
  check_services
  relay_up
  step "images (deploy/image/build.sh: rebuilt only when requirements or sources change)"
  image="$("$REPO/deploy/image/build.sh" k8x)"
  redis_image="$("$REPO/deploy/image/build.sh" redis)"
  note "$image"
  note "$redis_image"
  step "helm (deploy/helm/build-helm.sh)"
  helm="$("$REPO/deploy/helm/build-helm.sh")"
  note "$helm"
  step "namespace $NS (Pod Security: restricted)"
  kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS" >/dev/null
  kubectl label --overwrite namespace "$NS" \
    pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted \
    pod-security.kubernetes.io/audit=restricted >/dev/null
  step "helm upgrade --install $RELEASE -n $NS --wait"
  # shellcheck disable=SC2086  # K8X_HELM_ARGS splits on purpose
  # --take-ownership: the ClusterRoles and the admission policy may already exist, applied by
  # deploy/local/k8x-identity.sh for make up's K8X (they are kept on uninstall). The in-cluster
  # K8X runs as a ServiceAccount of its own, so undeploy never touches make up's identity.
  "$helm" upgrade --install "$RELEASE" "$CHART" -n "$NS" --create-namespace --wait --timeout 10m --take-ownership \
    --set serviceAccount.name=k8x-incluster \
    --set "image.repository=${image%:*}" --set "image.tag=${image##*:}" \
    --set "redis.image.repository=${redis_image%:*}" --set "redis.image.tag=${redis_image##*:}" \
    "${extra[@]}" ${K8X_HELM_ARGS:-} | sed 's/^/    /'
  local admin_msg node_ip port url
  # The pod's copy of the first password is in its emptyDir: say "shown once" instead of that path.
  admin_msg="$(kubectl -n "$NS" exec "deploy/$RELEASE-web" -- python3 manage.py k8x_bootstrap \
    | sed -e 's/(first run; also saved in .*)/(first run; shown once)/' -e 's/ (its password was printed at first run.*)//')"
  node_ip="$(kubectl get nodes -o 'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}')"
  port="$(kubectl -n "$NS" get service "$RELEASE-web" -o 'jsonpath={.spec.ports[0].nodePort}')"
  url="http://$node_ip:$port"
  curl -fsS -o /dev/null --max-time 10 "$url/readyz" || die "the console does not answer at $url/readyz"
  step "K8X is deployed in namespace $NS ($((SECONDS - t0))s)"
  note "console:    $url   (web Service $RELEASE-web, NodePort on the node address)"
  note "$admin_msg"
  note "API key:    kubectl -n $NS exec deploy/$RELEASE-web -- python3 manage.py k8x_apikey --project P --name N"
  note "pods:       kubectl -n $NS get pods"
  note "remove with: make undeploy"
}

cmd_undeploy() {
  use_cluster
  local helm
  helm="$("$REPO/deploy/helm/build-helm.sh")"
  step "helm uninstall $RELEASE -n $NS"
  if "$helm" status "$RELEASE" -n "$NS" >/dev/null 2>&1; then
    "$helm" uninstall "$RELEASE" -n "$NS" --wait --timeout 5m | sed 's/^/    /'
    # The Deployments are gone; wait for their pods too (graceful shutdown).
    kubectl -n "$NS" wait --for=delete pod -l "app.kubernetes.io/instance=$RELEASE" --timeout=120s >/dev/null 2>&1 || true
    note "pods of $RELEASE: $(kubectl -n "$NS" get pods -l "app.kubernetes.io/instance=$RELEASE" --no-headers 2>/dev/null | wc -l) left"
  else
    note "no release $RELEASE in $NS"
  fi
  relay_down
  note "kept: the Secret $RELEASE-secrets (keys that decrypt the stored secrets) and the database $DB_NAME"
}

case "${1:-}" in
  deploy) cmd_deploy ;;
  undeploy) cmd_undeploy ;;
  *) echo "usage: $0 deploy|undeploy" >&2; exit 2 ;;
esac
