#!/usr/bin/env bash
# Prints shell exports for the local cluster: eval "$(deploy/local/env.sh)"
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
printf 'export KUBECONFIG=%q\n' "$CLUSTER_DIR/kubeconfig"
# shellcheck disable=SC2016 # $PATH expands in the shell that evals this
printf 'export PATH=%q:"$PATH"\n' "$K8S_BIN"
printf 'export CRI_CONFIG_FILE=%q\n' "$CLUSTER_DIR/crictl.yaml"
