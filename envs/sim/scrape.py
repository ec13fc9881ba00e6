"""One Prometheus scrape of the simulated cluster: what each exporter would expose at ``t``.

* Triton's metrics port (8002) on every pod that serves: its counters and the pending
  request gauge. A pod that is starting has no metrics endpoint yet.
* cAdvisor: ``container_cpu_usage_seconds_total`` (request handling plus idle use).
* HAMi's device-plugin monitor (9394) and scheduler (9395): per-container memory and
  limits, per-GPU allocated cores, memory and task count.
* dcgm-exporter (9400): ``DCGM_FI_DEV_GPU_UTIL`` as the last second's utilisation (DCGM
  samples, it does not average over the collection interval) and framebuffer use.
* kube-state-metrics: the Deployment's replica counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from k8s_gpu_rl.envs.sim import state as st
from k8s_gpu_rl.envs.sim.pods import Phase
from k8s_gpu_rl.envs.sim.prometheus import DEPLOYMENT_GAUGES, GPU_GAUGES, POD_GAUGES, SERIES

if TYPE_CHECKING:
    from k8s_gpu_rl.envs.sim.cluster import SimCluster

MIB = 1024 * 1024
_PG = {name: i for i, name in enumerate(POD_GAUGES)}
_GG = {name: i for i, name in enumerate(GPU_GAUGES)}
_DG = {name: i for i, name in enumerate(DEPLOYMENT_GAUGES)}


def scrape(cluster: SimCluster, t: float) -> None:
    """Append the scrape at ``t`` to ``cluster.prom``."""
    row = cluster.prom.new_row(t)
    _scrape_pods(cluster, row, t)
    _scrape_gpus(cluster, row, t)
    _scrape_deployment(cluster, row, t)


def _serving(pod, t: float) -> bool:
    return pod.phase == Phase.TERMINATING or pod.is_ready(t)


def _scrape_pods(cluster: SimCluster, row: int, t: float) -> None:
    s, prom, cfg = cluster.s, cluster.prom, cluster.config
    for pod in cluster.pods:
        if not _serving(pod, t):
            continue
        col = pod.uid % SERIES
        counters = s.pod_counters[pod.slot].copy()
        counters[st.C_CPU_S] += cfg.serving.idle_cpu_cores * max(0.0, t - min(pod.started_s, t))
        prom.pod_counters[row, col, :] = counters
        gauges = prom.pod_gauges[row, col]
        queued = s.p_tail[pod.slot] - s.p_head[pod.slot] - s.p_batch_n[pod.slot]
        gauges[_PG["nv_inference_pending_request_count"]] = float(queued)
        gauges[_PG["hami_vgpu_memory_used_bytes"]] = cfg.serving.model_memory_mib * MIB
        gauges[_PG["hami_vgpu_memory_limit_bytes"]] = pod.template.gpumem_mib * MIB
        gauges[_PG["kube_pod_container_resource_requests_cpu_cores"]] = cfg.deployment.cpu_request
        gauges[_PG["kube_pod_container_resource_limits_nvidia_com_gpucores"]] = (
            pod.template.gpucores
        )


def _scrape_gpus(cluster: SimCluster, row: int, t: float) -> None:
    s, prom, cfg = cluster.s, cluster.prom, cluster.config
    second = int(s.ctr[st.K_CURRENT_SECOND])
    hist = s.g_hist
    busy_s = hist[second % st.GPU_HIST_S] - hist[(second - 1) % st.GPU_HIST_S]
    util = np.clip(busy_s, 0.0, 1.0) * 100.0
    for g, (_, gpu_cfg) in enumerate(cluster.gpu_list):
        if not cluster.gpu_healthy[g]:
            continue  # the exporter loses a fallen GPU's series
        on_gpu = [p for p in cluster.pods if p.gpu == g and p.phase != Phase.GONE]
        loaded = [
            p for p in on_gpu if p.phase in (Phase.READY, Phase.TERMINATING) or p.loaded_s <= t
        ]
        used_mib = cfg.serving.model_memory_mib * len(loaded)
        gauges = prom.gpu_gauges[row, g]
        gauges[_GG["DCGM_FI_DEV_GPU_UTIL"]] = util[g] if second > 0 else 0.0
        gauges[_GG["DCGM_FI_DEV_FB_USED"]] = used_mib
        gauges[_GG["DCGM_FI_DEV_FB_FREE"]] = gpu_cfg.memory_mib - used_mib
        cores = sum(p.template.gpucores for p in on_gpu)
        gauges[_GG["hami_gpu_core_allocated_ratio"]] = cores / (
            100.0 * cfg.hami.device_core_scaling
        )
        gauges[_GG["hami_gpu_memory_allocated_bytes"]] = (
            sum(p.template.gpumem_mib for p in on_gpu) * MIB
        )
        gauges[_GG["hami_gpu_shared_count"]] = len(on_gpu)


def _scrape_deployment(cluster: SimCluster, row: int, t: float) -> None:
    live = [p for p in cluster.pods if p.phase not in (Phase.TERMINATING, Phase.GONE)]
    available = sum(p.is_ready(t) for p in live)
    d = cluster.prom.deployment[row]
    d[_DG["kube_deployment_spec_replicas"]] = cluster.spec_replicas
    d[_DG["kube_deployment_status_replicas_available"]] = available
    d[_DG["kube_deployment_status_replicas_unavailable"]] = max(
        0, cluster.spec_replicas - available
    )
    d[_DG["kube_deployment_status_replicas"]] = len(live)
