"""HAMi placement rules (``k8s_gpu_rl.envs.sim.hami``) case by case, as pure functions.

The rules under test are the ones ``../shared/FACTS.md`` states for HAMi chart v2.10: a GPU
fits a task unless its split count is used up, free memory or free cores are below the
request, the task asks gpucores = 100 and the GPU already has a task, or the GPU's cores
are all allocated and the task asks 0 cores. Node policy binpack/spread picks the
fullest/emptiest node, GPU policy the fullest/emptiest GPU on it.
"""

from __future__ import annotations

import pytest

from k8s_gpu_rl.envs.sim.hami import GpuSlot, allocate, capacity, fits, place, release

RTX3080_MIB = 10240


def gpu(
    index: int = 0,
    node: int = 0,
    *,
    memory_mib: float = RTX3080_MIB,
    cores: float = 100.0,
    split_count: int = 10,
    healthy: bool = True,
) -> GpuSlot:
    """An empty GPU with the chart's default scaling (registered = physical)."""
    return GpuSlot(
        index=index,
        node=node,
        memory_mib=memory_mib,
        cores=cores,
        split_count=split_count,
        healthy=healthy,
    )


def fill(slot: GpuSlot, tasks: list[tuple[float, float]]) -> GpuSlot:
    """``slot`` with the given (memory_mib, cores) tasks allocated."""
    for memory_mib, cores in tasks:
        slot = allocate(slot, memory_mib, cores)
    return slot


def test_split_count_caps_tasks_per_gpu() -> None:
    slot = gpu(split_count=3)
    for _ in range(3):
        assert fits(slot, 100, 5)
        slot = allocate(slot, 100, 5)
    assert slot.used_tasks == 3
    # plenty of memory (9940 MiB) and cores (85) left, but the split count is used up
    assert not fits(slot, 100, 5)
    assert capacity([gpu(split_count=3)], 100, 5) == 3


def test_memory_limit_admits_exact_fit_and_rejects_one_mib_more() -> None:
    slot = allocate(gpu(), 5120, 10)
    assert fits(slot, 5120, 10)  # free 5120 == requested
    assert not fits(slot, 5121, 10)
    assert capacity([gpu()], 4096, 10) == 2  # 2 x 4096 = 8192; 2048 left < 4096
    assert capacity([gpu()], 3000, 10) == 3


def test_core_limit_admits_exact_fit_and_rejects_more() -> None:
    slot = fill(gpu(), [(1024, 30), (1024, 30), (1024, 30)])
    assert slot.used_cores == 90
    assert fits(slot, 1024, 10)
    assert not fits(slot, 1024, 11)
    assert capacity([gpu()], 1024, 30) == 3


def test_gpucores_100_is_exclusive() -> None:
    assert fits(gpu(), 1024, 100)
    # any task already on the GPU, even a tiny one with no cores, blocks an exclusive task
    assert not fits(allocate(gpu(), 1, 0), 1024, 100)
    taken = allocate(gpu(), 1024, 100)
    assert not fits(taken, 1024, 100)
    assert not fits(taken, 1024, 1)
    assert not fits(taken, 1024, 0)  # cores all allocated: a 0-core task is refused too
    assert capacity([gpu()], 1024, 100) == 1


def test_zero_core_task_rejected_only_when_cores_are_fully_allocated() -> None:
    partly = allocate(gpu(), 1024, 60)
    assert fits(partly, 1024, 0)
    full = allocate(partly, 1024, 40)
    assert full.used_cores == 100
    assert not fits(full, 1024, 0)
    # with no cores asked, only memory and the split count bound the count
    assert capacity([gpu()], 1024, 0) == 10
    assert capacity([gpu(split_count=4)], 1024, 0) == 4


def test_device_memory_scaling_oversubscribes_registered_memory() -> None:
    # deviceMemoryScaling 2: a 10 GB card registers 20 GB
    assert capacity([gpu(memory_mib=2 * RTX3080_MIB)], 4096, 10) == 5
    assert capacity([gpu()], 4096, 10) == 2


def test_unhealthy_gpu_is_never_chosen() -> None:
    sick, well = gpu(0, healthy=False), gpu(1)
    assert not fits(sick, 1, 0)
    # both empty: spread and binpack would both take index 0 on a tie, were it healthy
    for policy in ("spread", "binpack"):
        assert place([sick, well], 1024, 10, gpu_policy=policy) == 1
    assert place([sick, gpu(1, healthy=False)], 1024, 10) is None
    assert capacity([sick, well], 1024, 10) == 10
    assert capacity([sick], 1024, 10) == 0


def test_pod_that_fits_nowhere_gets_no_gpu() -> None:
    assert place([fill(gpu(), [(5120, 50), (5120, 50)])], 1024, 10) is None


@pytest.mark.parametrize(("node_policy", "expected_gpu"), [("binpack", 0), ("spread", 1)])
def test_node_policy_binpack_picks_fullest_node_spread_the_emptiest(
    node_policy: str, expected_gpu: int
) -> None:
    # two single-GPU nodes; node 0 already runs a task
    busy, empty = allocate(gpu(0, node=0), 2048, 20), gpu(1, node=1)
    assert place([busy, empty], 2048, 20, node_policy=node_policy) == expected_gpu


@pytest.mark.parametrize(("gpu_policy", "expected_gpu"), [("binpack", 0), ("spread", 1)])
def test_gpu_policy_binpack_picks_fullest_gpu_spread_the_emptiest(
    gpu_policy: str, expected_gpu: int
) -> None:
    # one node with two GPUs; GPU 0 already runs a task
    busy, empty = allocate(gpu(0), 2048, 20), gpu(1)
    assert place([busy, empty], 2048, 20, gpu_policy=gpu_policy) == expected_gpu


def test_binpack_skips_the_fullest_node_when_the_task_does_not_fit_there() -> None:
    full_node = fill(gpu(0, node=0), [(5120, 50), (4096, 40)])  # 10 cores, 1024 MiB left
    other = allocate(gpu(1, node=1), 1024, 10)
    assert place([full_node, other], 2048, 20, node_policy="binpack") == 1


def test_default_policies_spread_pods_over_the_gpus_of_one_node() -> None:
    # HAMi defaults: node binpack, GPU spread -> consecutive pods alternate GPUs
    slots = [gpu(0), gpu(1)]
    chosen = []
    for _ in range(4):
        g = place(slots, 2048, 20)
        assert g is not None
        chosen.append(g)
        slots[g] = allocate(slots[g], 2048, 20)
    assert chosen == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("memory_mib", "cores", "expected"),
    [
        (5120, 50, 2),  # the user's default Deployment: two pods per RTX 3080
        (2048, 20, 5),  # memory and cores both bound at 5
        (1024, 10, 10),  # split count, memory and cores all at 10
        (512, 5, 10),  # split count binds
        (3000, 10, 3),  # memory binds
        (1024, 30, 3),  # cores bind
        (1024, 100, 1),  # exclusive
        (20480, 10, 0),  # more memory than the card has
    ],
)
def test_capacity_counts_pods_of_one_share_per_rtx3080(
    memory_mib: int, cores: int, expected: int
) -> None:
    assert capacity([gpu()], memory_mib, cores) == expected
    assert capacity([gpu(0), gpu(1)], memory_mib, cores) == 2 * expected
    assert capacity([gpu(0, node=0), gpu(1, node=1)], memory_mib, cores) == 2 * expected


def test_capacity_counts_room_left_and_leaves_its_input_alone() -> None:
    slots = [allocate(gpu(0), 5120, 50), gpu(1)]
    before = list(slots)
    assert capacity(slots, 2048, 20) == 2 + 5  # GPU 0 has 50 cores / 5120 MiB left
    assert slots == before


def test_release_undoes_allocate() -> None:
    slot = allocate(gpu(), 5120, 50)
    assert release(slot, 5120, 50) == gpu()
    assert slot.usage == pytest.approx(0.5 + 0.5 + 0.1)
