#!/usr/bin/env bash
# Shared by helm-install.sh and model-repository.sh (sourced, not run): messages, the
# dry-run wrapper and finding kubectl/helm (a plain install or MicroK8s' wrappers).
# shellcheck disable=SC2034  # KUBECTL_CMD and HELM_CMD are read by the sourcing script
set -euo pipefail

die() {
    echo "error: $*" >&2
    exit 1
}

say() {
    echo "==> $*"
}

# Runs a command, or prints it (shell-quoted) when DRY_RUN is 1.
run() {
    if [[ ${DRY_RUN:-0} -eq 1 ]]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# Sets KUBECTL_CMD: $KUBECTL, else kubectl, else `microk8s kubectl`.
find_kubectl() {
    if [[ -n "${KUBECTL:-}" ]]; then
        read -r -a KUBECTL_CMD <<<"$KUBECTL"
    elif command -v kubectl >/dev/null 2>&1; then
        KUBECTL_CMD=(kubectl)
    elif command -v microk8s >/dev/null 2>&1; then
        KUBECTL_CMD=(microk8s kubectl)
    else
        die "kubectl not found: install it or set KUBECTL (e.g. KUBECTL='microk8s kubectl')"
    fi
}

# Sets HELM_CMD: $HELM, else helm, else `microk8s helm3`.
find_helm() {
    if [[ -n "${HELM:-}" ]]; then
        read -r -a HELM_CMD <<<"$HELM"
    elif command -v helm >/dev/null 2>&1; then
        HELM_CMD=(helm)
    elif command -v microk8s >/dev/null 2>&1; then
        HELM_CMD=(microk8s helm3)
    else
        die "helm not found: install Helm 3, or run 'microk8s enable helm3', or set HELM"
    fi
}
