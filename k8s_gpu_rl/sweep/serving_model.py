"""The simulator's serving model for one pod running alone, as ``envs/sim/kernel.c`` has it.

A batch of n items takes ``(batch_base_ms + batch_per_item_ms * n) / share`` on the GPU,
where ``share`` is the pod's effective share when it runs alone: ``strength * gpucores/100
+ (1 - strength)`` (``hami.core_limit_strength``) times the GPU's ``speed``. Under
sustained load the token-bucket mode (``hami.token_bucket_s > 0``) holds the pod to the
same share, so back-to-back batches (what the sweep's worker times) take the same time in
both modes. Each request also costs ``cpu_ms_per_request`` of CPU at one core before it
reaches the batcher.
"""

from __future__ import annotations

from k8s_gpu_rl.envs.sim.config import ClusterConfig


def effective_share(cluster: ClusterConfig, gpucores: int) -> float:
    """A lone pod's share of its GPU (kernel.c ``effective_share`` with no neighbours)."""
    share = gpucores / 100.0 if gpucores > 0 else 1.0
    strength = cluster.hami.core_limit_strength
    own = strength * share + (1.0 - strength)
    speed = cluster.gpus[0][1].speed if cluster.gpus else 1.0
    return own / max(1.0, own) * speed


def batch_ms(cluster: ClusterConfig, gpucores: int, batch: int) -> float:
    """Wall-clock ms of one batch of ``batch`` items for a lone pod at ``gpucores``."""
    s = cluster.serving
    return (s.batch_base_ms + s.batch_per_item_ms * batch) / effective_share(cluster, gpucores)
