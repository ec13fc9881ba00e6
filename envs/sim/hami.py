"""HAMi's vGPU placement rules as pure functions (Project-HAMi/HAMi, chart v2.10).

A GPU fits a task unless its split count is used up, its free memory or free cores are
below the request, the task asks gpucores = 100 (exclusive) and the GPU already has a
task (only on a GPU registering exactly 100 cores: with deviceCoreScaling 2 it shares),
or all its cores are allocated and the task asks 0 cores. A task that sets no gpumem
asks ``nvidia.com/gpumem-percentage`` of the GPU's memory, 100 % if that is unset too;
one that sets neither gpumem nor gpucores on exclusive memory gets gpucores = 100
(:func:`resolve_request`, the webhook's and scheduler's defaults). Among nodes with a
fitting GPU the node policy picks (binpack: the fullest; spread: the emptiest), then the
GPU policy picks a GPU on that node. A pod that fits nowhere stays Pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from k8s_gpu_rl.envs.sim.config import ClusterConfig

Policy = Literal["binpack", "spread"]


@dataclass(frozen=True)
class GpuSlot:
    """What HAMi's scheduler knows of one GPU."""

    index: int
    """Cluster-wide GPU index."""
    node: int
    """Index of the node that holds it."""
    memory_mib: float
    """Registered memory (physical x deviceMemoryScaling)."""
    cores: float
    """Registered cores (100 x deviceCoreScaling)."""
    split_count: int
    """deviceSplitCount."""
    healthy: bool = True
    used_tasks: int = 0
    used_memory_mib: float = 0.0
    used_cores: float = 0.0

    @property
    def usage(self) -> float:
        """A 0..3 fullness score: memory, cores and task slots used, each as a fraction."""
        return (
            self.used_memory_mib / self.memory_mib
            + self.used_cores / self.cores
            + self.used_tasks / self.split_count
        )


def resolve_request(
    gpumem_mib: float | None = None,
    gpumem_percentage: float | None = None,
    gpucores: float | None = None,
) -> tuple[float | None, float | None, float]:
    """A container's HAMi limits with HAMi's defaults filled in.

    Returns (gpumem MiB or None, gpumem percentage or None, gpucores): memory is either an
    absolute request or a percentage of the GPU (:func:`memory_request` turns it into MiB
    per GPU). A gpumem of 0 or None is unset: the percentage is used, 100 when it is unset
    too. gpucores unset is 0 (no limit), except on exclusive memory (100 %), where the
    webhook injects 100; above 100 it is clamped to 100 (as the scheduler does).
    """
    if gpumem_mib:
        memory, percentage = float(gpumem_mib), None
    else:
        memory, percentage = None, 100.0 if gpumem_percentage is None else float(gpumem_percentage)
    if gpucores is None:
        cores = 100.0 if percentage == 100.0 else 0.0
    else:
        cores = min(float(gpucores), 100.0)
    return memory, percentage, cores


def memory_request(gpu: GpuSlot, gpumem_mib: float | None, percentage: float | None) -> float:
    """MiB a task takes on ``gpu`` (``getMemoryRequest``: a percentage of its total, truncated)."""
    if gpumem_mib:
        return float(gpumem_mib)
    return float(int(gpu.memory_mib * (100.0 if percentage is None else percentage) / 100.0))


def fits(gpu: GpuSlot, memory_mib: float, cores: float) -> bool:
    """Whether a task asking ``memory_mib`` and ``cores`` fits on ``gpu``."""
    if not gpu.healthy or gpu.used_tasks >= gpu.split_count:
        return False
    if gpu.memory_mib - gpu.used_memory_mib < memory_mib:
        return False
    if gpu.cores - gpu.used_cores < cores:
        return False
    if gpu.cores == 100 and cores >= 100 and gpu.used_tasks > 0:  # exclusive: 100 of 100
        return False
    return not (cores == 0 and gpu.used_cores >= gpu.cores)


def allocate(gpu: GpuSlot, memory_mib: float, cores: float) -> GpuSlot:
    """``gpu`` with one more task of the given size."""
    return replace(
        gpu,
        used_tasks=gpu.used_tasks + 1,
        used_memory_mib=gpu.used_memory_mib + memory_mib,
        used_cores=gpu.used_cores + cores,
    )


def release(gpu: GpuSlot, memory_mib: float, cores: float) -> GpuSlot:
    """``gpu`` with one task of the given size removed."""
    return replace(
        gpu,
        used_tasks=gpu.used_tasks - 1,
        used_memory_mib=gpu.used_memory_mib - memory_mib,
        used_cores=gpu.used_cores - cores,
    )


def place(
    gpus: list[GpuSlot],
    memory_mib: float,
    cores: float,
    node_policy: Policy = "binpack",
    gpu_policy: Policy = "spread",
) -> int | None:
    """The GPU index HAMi would bind the task to, or ``None`` (the pod stays Pending)."""
    candidates = [g for g in gpus if fits(g, memory_mib, cores)]
    if not candidates:
        return None
    node_usage: dict[int, float] = {}
    for g in gpus:
        if g.healthy:
            node_usage[g.node] = node_usage.get(g.node, 0.0) + g.usage
    nodes = sorted({g.node for g in candidates})
    sign = -1.0 if node_policy == "binpack" else 1.0
    node = min(nodes, key=lambda n: (sign * node_usage[n], n))
    on_node = [g for g in candidates if g.node == node]
    sign = -1.0 if gpu_policy == "binpack" else 1.0
    return min(on_node, key=lambda g: (sign * g.usage, g.index)).index


def capacity(gpus: list[GpuSlot], memory_mib: float, cores: float) -> int:
    """How many more tasks of this size HAMi can place on ``gpus``, placing greedily."""
    slots = list(gpus)
    count = 0
    while True:
        chosen = place(slots, memory_mib, cores)
        if chosen is None:
            return count
        slots[chosen] = allocate(slots[chosen], memory_mib, cores)
        count += 1


def cluster_slots(cluster: ClusterConfig, healthy: Sequence[bool] | None = None) -> list[GpuSlot]:
    """Empty :class:`GpuSlot` s for every GPU of ``cluster`` (``healthy[i]``: GPU i usable)."""
    h = cluster.hami
    return [
        GpuSlot(
            index=i,
            node=node,
            memory_mib=g.memory_mib * h.device_memory_scaling,
            cores=100.0 * h.device_core_scaling,
            split_count=h.device_split_count,
            healthy=True if healthy is None else bool(healthy[i]),
        )
        for i, (node, g) in enumerate(cluster.gpus)
    ]
