"""Typed configuration: shipped cluster files, defaults, and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_gpu_rl.config import replace, to_dict
from k8s_gpu_rl.envs.config import EnvConfig, gpumem_for
from k8s_gpu_rl.envs.sim.config import (
    ClusterConfig,
    FaultConfig,
    available_clusters,
    load_cluster_config,
)
from k8s_gpu_rl.errors import ConfigError


def test_default_cluster_file_states_the_dataclass_defaults() -> None:
    assert load_cluster_config("rtx3080") == ClusterConfig()


@pytest.mark.parametrize("name", available_clusters())
def test_every_shipped_cluster_loads(name: str) -> None:
    cfg = load_cluster_config(name)
    assert cfg.name == name and len(cfg.gpus) >= 1


def test_round_trip_through_dict() -> None:
    cfg = replace(ClusterConfig(), faults=[{"kind": "gpu_failure", "at_s": 60.0}])
    assert load_cluster_config(to_dict(cfg)) == cfg
    assert cfg.faults == (FaultConfig(kind="gpu_failure", at_s=60.0),)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("hami: {device_split_count: 0}", r"hami: device_split_count must be >= 1, got 0"),
        (
            "hami: {devce_split_count: 4}",
            r"hami: unknown field 'devce_split_count' \(did you mean 'device_split_count'\?\)",
        ),
        (
            "serving: {max_batch_size: eight}",
            r"serving.max_batch_size: expected an integer, got 'eight'",
        ),
        ("hami: {gpu_scheduler_policy: pack}", r"gpu_scheduler_policy: 'pack' is not allowed"),
        ("faults: [{kind: meteor, at_s: 3}]", r"faults\[0\].kind: 'meteor' is not allowed"),
        ("metrics: {scrape_interval_s: 60, rate_window_s: 60}", r"must hold two scrapes"),
        ("nodes: [{gpus: [{memory_mib: -1}]}]", r"memory_mib must be positive"),
        ("hami: [1, 2", r"not valid YAML"),
    ],
)
def test_malformed_cluster_file_names_file_field_and_value(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle) as err:
        load_cluster_config(path)
    assert "mine.yaml" in str(err.value)


def test_missing_cluster_file() -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_cluster_config(Path("/nonexistent/cluster.yaml"))


@pytest.mark.parametrize(
    ("cores", "expected"),
    [(10, 2048), (20, 2048), (30, 3072), (50, 5120), (70, 7168), (100, 10240)],
)
def test_gpumem_rule(cores: int, expected: int) -> None:
    assert gpumem_for(cores, 10240, 1536, 1.25) == expected


def test_gpumem_rule_never_below_model_needs() -> None:
    for cores in range(1, 101):
        assert gpumem_for(cores, 10240, 1536, 1.25) >= 1536 * 1.25


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rtx3080", 5120),  # 50 % of 10240 MiB (the model's 1536 x 1.25 = 1920 -> 2048 is lower)
        ("rtx3090", 12288),  # 50 % of 24576 MiB
        ("v100x2", 16384),  # 50 % of 32768 MiB
        ("local", 2048),  # 50 % of the 4096 MiB budget
    ],
)
def test_shipped_deployment_gpumem_follows_the_rule(name: str, expected: int) -> None:
    """The Deployment as shipped is what the env's own rule gives for its gpucores (the same
    fraction of the GPU's memory as of its cores), so keeping the share rolls nothing."""
    cfg, env = load_cluster_config(name), EnvConfig()
    assert cfg.deployment.gpucores == 50
    assert cfg.deployment.gpumem_mib == expected
    ((_, gpu), *_) = cfg.gpus  # (node, GPU) pairs
    memory = gpu.memory_mib
    rule = gpumem_for(50, memory, cfg.serving.model_memory_mib, env.gpumem_headroom)
    assert rule == expected
