"""HAMi's smaller rules, from its scheduler source (``pkg/device/nvidia/device.go``:
``fitInCertainDevice`` / ``getMemoryRequest``) and webhook defaults (../shared/FACTS.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_gpu_rl.config import replace
from k8s_gpu_rl.envs.sim import hami
from k8s_gpu_rl.envs.sim.cluster import SimCluster
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.loadprofiles import load_profile


def _gpu(cores: float = 100.0, used_tasks: int = 0, used_cores: float = 0.0) -> hami.GpuSlot:
    return hami.GpuSlot(
        index=0, node=0, memory_mib=10240.0, cores=cores, split_count=10,
        used_tasks=used_tasks, used_cores=used_cores, used_memory_mib=1024.0 * used_tasks,
    )  # fmt: skip


def test_exclusive_gpucores_100_needs_an_empty_gpu_of_100_cores() -> None:
    assert hami.fits(_gpu(), 1024, 100)
    assert not hami.fits(_gpu(used_tasks=1, used_cores=0), 1024, 100)  # "already in use"


def test_with_core_scaling_2_a_gpucores_100_pod_can_share() -> None:
    # deviceCoreScaling 2 registers 200 cores: Totalcore != 100, so no exclusive conflict
    assert hami.fits(_gpu(cores=200, used_tasks=1, used_cores=50), 1024, 100)
    assert not hami.fits(_gpu(cores=200, used_tasks=1, used_cores=150), 1024, 100)  # 50 left


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ((None, None, None), (None, 100.0, 100.0)),  # nvidia.com/gpu only: exclusive, cores 100
        ((0, None, None), (None, 100.0, 100.0)),  # gpumem 0 is unset
        ((None, 50, None), (None, 50.0, 0.0)),  # a percentage: shared memory, no core limit
        ((None, 100, None), (None, 100.0, 100.0)),  # 100 % is exclusive memory
        ((4096, None, None), (4096.0, None, 0.0)),  # absolute memory, cores unset = 0
        ((4096, 50, 30), (4096.0, None, 30.0)),  # gpumem wins over the percentage
        ((None, None, 150), (None, 100.0, 100.0)),  # cores clamped to 100
    ],
)
def test_resolve_request_fills_hamis_defaults(request_: tuple, expected: tuple) -> None:
    assert hami.resolve_request(*request_) == expected


@pytest.mark.parametrize(
    ("gpumem", "pct", "mib"),
    [(None, None, 10240.0), (None, 50, 5120.0), (None, 33, 3379.0), (4096, None, 4096.0)],
)
def test_memory_request_per_gpu(gpumem: float | None, pct: float | None, mib: float) -> None:
    # 10240 * 33 / 100 = 3379.2, truncated as Go's int32 arithmetic does
    assert hami.memory_request(_gpu(), gpumem, pct) == mib


def test_cuda_oom_at_model_load_exits_with_error_not_oomkilled(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\ndescription: d\nwait_time: {min: 1, max: 1}\n"
        "stages:\n  - {duration: 120, users: 1, spawn_rate: 1}\n"
    )
    config = replace(ClusterConfig(), deployment={"gpumem_mib": 1024})  # the model needs 1.5 GiB
    cluster = SimCluster(config, load_profile(path), seed=0)
    events = cluster.advance(60.0).events
    crashes = [e for e in events if "at model load" in e]
    assert crashes, events
    assert all("reason Error" in e and "CUDA out of memory" in e for e in crashes)
    assert not any("OOMKilled" in e for e in events)  # that is the kernel's host-memory kill
