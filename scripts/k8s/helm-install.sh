#!/usr/bin/env bash
# Installs the cluster-wide parts of the k8s-gpu-rl testbed with Helm, pinned:
#
#   kube-prometheus-stack  Prometheus (+ operator, kube-state-metrics, Grafana), release
#                          kube-prom-stack in namespace observability: the same release name,
#                          namespace and chart version as MicroK8s' observability addon, so
#                          the base's PodMonitor/ServiceMonitors (label
#                          release=kube-prom-stack) are selected either way. Skipped when that
#                          release already exists (the addon installed it).
#   HAMi                   vGPU scheduler + device plugin + webhook, release hami in
#                          kube-system (what servicemonitor-hami.yaml expects).
#   dcgm-exporter          NVIDIA's GPU exporter on :9400, with a ServiceMonitor.
#
# Usage: scripts/k8s/helm-install.sh [options]
#   --dry-run               print the commands instead of running them (needs neither helm
#                           nor kubectl nor a cluster)
#   --prometheus=MODE       auto (default): install unless the kube-prom-stack release exists;
#                           install: install/upgrade it anyway; skip: leave Prometheus alone
#   --skip-hami             do not install HAMi
#   --skip-dcgm-exporter    do not install dcgm-exporter (e.g. when the GPU operator's own
#                           exporter is kept)
#   -h, --help              this text
# Environment:
#   HELM, KUBECTL           the commands to use (default: helm/kubectl if on PATH, else
#                           `microk8s helm3` / `microk8s kubectl`)
#   KUBE_SCHEDULER_TAG      kube-scheduler image tag for HAMi's scheduler pod (default: the
#                           API server's version, vX.Y.Z; it must match the cluster)
#   KUBELET_PLUGIN_DIR      kubelet's device-plugin directory (default: detected; MicroK8s
#                           keeps kubelet under /var/snap/microk8s/common/var/lib/kubelet and
#                           links /var/lib/kubelet to it)
set -euo pipefail

# --- pinned versions (chart repositories' index.yaml list each of them) ------------------
HAMI_REPO="https://project-hami.github.io/HAMi/"
HAMI_CHART_VERSION="2.10.0"
DCGM_REPO="https://nvidia.github.io/dcgm-exporter/helm-charts"
DCGM_CHART_VERSION="4.8.2"
PROM_REPO="https://prometheus-community.github.io/helm-charts"
PROM_CHART_VERSION="77.6.2"

PROM_RELEASE="kube-prom-stack"
PROM_NAMESPACE="observability"
HAMI_RELEASE="hami"
HAMI_NAMESPACE="kube-system"
DCGM_RELEASE="dcgm-exporter"
DCGM_NAMESPACE="gpu-monitoring"
SCRAPE_INTERVAL="30s"

DRY_RUN=0
PROMETHEUS_MODE="auto"
INSTALL_HAMI=1
INSTALL_DCGM=1

usage() {
    sed -n '2,/^set -euo pipefail/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# die, say, run, find_kubectl, find_helm
# shellcheck source=scripts/k8s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        --prometheus=auto | --prometheus=install | --prometheus=skip)
            PROMETHEUS_MODE="${arg#--prometheus=}"
            ;;
        --prometheus=*) die "--prometheus takes auto, install or skip, not '${arg#--prometheus=}'" ;;
        --skip-hami) INSTALL_HAMI=0 ;;
        --skip-dcgm-exporter) INSTALL_DCGM=0 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown option '$arg' (see --help)" ;;
    esac
done

# --- the tools ---------------------------------------------------------------------------
if [[ $DRY_RUN -eq 1 ]]; then
    HELM_CMD=(helm)
    KUBECTL_CMD=(kubectl)
else
    find_helm
    find_kubectl
fi

# --- kube-prometheus-stack ---------------------------------------------------------------
install_prometheus() {
    case "$PROMETHEUS_MODE" in
        skip)
            say "Prometheus: skipped (--prometheus=skip)"
            return
            ;;
        auto)
            if [[ $DRY_RUN -eq 1 ]]; then
                say "Prometheus: installed unless release $PROM_RELEASE exists in $PROM_NAMESPACE" \
                    "(MicroK8s' observability addon); checked with:"
                run "${HELM_CMD[@]}" status "$PROM_RELEASE" --namespace "$PROM_NAMESPACE"
            elif "${HELM_CMD[@]}" status "$PROM_RELEASE" --namespace "$PROM_NAMESPACE" >/dev/null 2>&1; then
                say "Prometheus: release $PROM_RELEASE already in $PROM_NAMESPACE" \
                    "(MicroK8s' observability addon?), leaving it as it is"
                return
            elif "${KUBECTL_CMD[@]}" get crd podmonitors.monitoring.coreos.com >/dev/null 2>&1; then
                die "a Prometheus operator is installed, but not as release $PROM_RELEASE in" \
                    "$PROM_NAMESPACE. Rerun with --prometheus=skip and change the" \
                    "'release: kube-prom-stack' labels in scripts/k8s/base to your" \
                    "Prometheus' selector, or with --prometheus=install to add this one."
            fi
            ;;
    esac
    say "Prometheus: kube-prometheus-stack $PROM_CHART_VERSION as $PROM_RELEASE in $PROM_NAMESPACE"
    run "${HELM_CMD[@]}" upgrade --install "$PROM_RELEASE" kube-prometheus-stack \
        --repo "$PROM_REPO" --version "$PROM_CHART_VERSION" \
        --namespace "$PROM_NAMESPACE" --create-namespace \
        --set "prometheus.prometheusSpec.scrapeInterval=$SCRAPE_INTERVAL" \
        --wait --timeout 15m
}

# --- HAMi --------------------------------------------------------------------------------
kube_scheduler_tag() {
    if [[ -n "${KUBE_SCHEDULER_TAG:-}" ]]; then
        echo "$KUBE_SCHEDULER_TAG"
        return
    fi
    if [[ $DRY_RUN -eq 1 ]]; then
        echo "<API server version, vX.Y.Z>"
        return
    fi
    local version
    version=$("${KUBECTL_CMD[@]}" version -o json | sed -n 's/.*"gitVersion": *"\(v[0-9]*\.[0-9]*\.[0-9]*\).*/\1/p' | tail -n 1)
    [[ -n "$version" ]] || die "could not read the API server's version; set KUBE_SCHEDULER_TAG"
    echo "$version"
}

kubelet_plugin_dir() {
    if [[ -n "${KUBELET_PLUGIN_DIR:-}" ]]; then
        echo "$KUBELET_PLUGIN_DIR"
    elif [[ $DRY_RUN -eq 0 && -d /var/snap/microk8s/common/var/lib/kubelet && ! -L /var/lib/kubelet ]]; then
        # MicroK8s could not link /var/lib/kubelet to its kubelet directory.
        echo "/var/snap/microk8s/common/var/lib/kubelet/device-plugins"
    else
        echo "/var/lib/kubelet/device-plugins"
    fi
}

install_hami() {
    local tag plugin_dir
    tag=$(kube_scheduler_tag)
    plugin_dir=$(kubelet_plugin_dir)
    say "HAMi: chart hami $HAMI_CHART_VERSION as $HAMI_RELEASE in $HAMI_NAMESPACE" \
        "(kube-scheduler $tag, device plugins in $plugin_dir)"
    say "HAMi runs its device plugin only on nodes labelled gpu=on:" \
        "kubectl label node <node> gpu=on --overwrite"
    run "${HELM_CMD[@]}" upgrade --install "$HAMI_RELEASE" hami \
        --repo "$HAMI_REPO" --version "$HAMI_CHART_VERSION" \
        --namespace "$HAMI_NAMESPACE" \
        --set schedulerName=hami-scheduler \
        --set scheduler.kubeScheduler.image.registry=registry.k8s.io \
        --set scheduler.kubeScheduler.image.repository=kube-scheduler \
        --set "scheduler.kubeScheduler.image.tag=$tag" \
        --set scheduler.defaultSchedulerPolicy.nodeSchedulerPolicy=binpack \
        --set scheduler.defaultSchedulerPolicy.gpuSchedulerPolicy=spread \
        --set devicePlugin.deviceSplitCount=10 \
        --set devicePlugin.deviceMemoryScaling=1 \
        --set devicePlugin.deviceCoreScaling=1 \
        --set "devicePlugin.pluginPath=$plugin_dir" \
        --set-string devicePlugin.nvidiaNodeSelector.gpu=on \
        --wait --timeout 10m
}

# --- dcgm-exporter -----------------------------------------------------------------------
install_dcgm() {
    say "dcgm-exporter: chart $DCGM_CHART_VERSION as $DCGM_RELEASE in $DCGM_NAMESPACE" \
        "(ServiceMonitor every $SCRAPE_INTERVAL, label release=$PROM_RELEASE)"
    run "${HELM_CMD[@]}" upgrade --install "$DCGM_RELEASE" dcgm-exporter \
        --repo "$DCGM_REPO" --version "$DCGM_CHART_VERSION" \
        --namespace "$DCGM_NAMESPACE" --create-namespace \
        --set serviceMonitor.enabled=true \
        --set "serviceMonitor.interval=$SCRAPE_INTERVAL" \
        --set "serviceMonitor.additionalLabels.release=$PROM_RELEASE" \
        --wait --timeout 10m
}

if [[ $DRY_RUN -eq 1 ]]; then
    say "dry run: nothing is installed; these are the commands"
fi
install_prometheus
if [[ $INSTALL_HAMI -eq 1 ]]; then
    install_hami
else
    say "HAMi: skipped (--skip-hami)"
fi
if [[ $INSTALL_DCGM -eq 1 ]]; then
    install_dcgm
else
    say "dcgm-exporter: skipped (--skip-dcgm-exporter)"
fi
if [[ $DRY_RUN -eq 0 ]]; then
    say "done. Check: ${KUBECTL_CMD[*]} -n $HAMI_NAMESPACE get pods -l app.kubernetes.io/instance=$HAMI_RELEASE"
    say "then: ${KUBECTL_CMD[*]} apply -k scripts/k8s/base"
fi
