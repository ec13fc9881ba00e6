"""``run --backend sim``: the simulator's serving model predicts each experiment.

The serving model is a cluster config's ``serving:`` section (see
:mod:`k8s_gpu_rl.sweep.serving_model`): ``--cluster FILE`` for every task, else
``<out>/fit/<task>.yaml`` written by ``fit``, else the shipped ``rtx3080`` cluster for
``mobilenetv4`` (its serving section describes that model). A model whose memory exceeds
the configuration's ``gpumem`` fails as HAMi-core makes it fail (``GPU-OOM``); one whose
measured host memory (``fit/<task>.json``) exceeds the memory limit is ``OOM``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from k8s_gpu_rl.envs.sim.config import ClusterConfig, load_cluster_config
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.sweep.configs import MIB
from k8s_gpu_rl.sweep.runners import Experiment, Outcome
from k8s_gpu_rl.sweep.serving_model import batch_ms


class SimRunner:
    """Predict experiments from a cluster's serving model (see the module docstring)."""

    def __init__(
        self, batch_sizes: list[int], out: Path | None = None, cluster: str | None = None
    ) -> None:
        self.batch_sizes = batch_sizes
        self.out = out
        self.cluster = cluster

    def serving_for(self, task: str) -> tuple[ClusterConfig, dict[str, Any]]:
        """The cluster config and the fit's extra figures (host memory) for ``task``."""
        if self.cluster is not None:
            return load_cluster_config(self.cluster), {}
        fitted = self.out / "fit" / f"{task}.yaml" if self.out else None
        if fitted is not None and fitted.exists():
            extra = fitted.with_suffix(".json")
            return load_cluster_config(fitted), json.loads(
                extra.read_text()
            ) if extra.exists() else {}
        if task == "mobilenetv4":
            return load_cluster_config("rtx3080"), {}
        raise ConfigError(
            f"no serving model for task {task!r}: run `python -m sweep fit --task {task}` "
            "on measured results first, or pass --cluster FILE"
        )

    def run(self, exp: Experiment) -> Outcome:
        cluster, extra = self.serving_for(exp.task)
        c, s = exp.config, cluster.serving
        host_mib = extra.get("host_memory_mib")
        if s.model_memory_mib > c.gpumem_mib:
            msg = (f"CUDA out of memory (simulated HAMi-core): Device 0 OOM "
                   f"{s.model_memory_mib * MIB} / {c.gpumem_mib * MIB}")  # fmt: skip
            return Outcome("GPU-OOM", msg, cluster.startup.median_s)
        if host_mib is not None and host_mib * MIB > c.memory_bytes:
            msg = f"OOMKilled: {host_mib:.0f} MiB measured exceeds the {c.memory} limit"
            return Outcome("OOM", msg, cluster.startup.median_s)
        return Outcome("success", "", 0.0, self._result(cluster, c, host_mib))

    def _result(self, cluster: ClusterConfig, c: Any, host_mib: float | None) -> dict[str, Any]:
        latency = {}
        for b in self.batch_sizes:
            ms = batch_ms(cluster, c.gpucores, b)
            latency[str(b)] = {"mean_ms": ms, "p50_ms": ms, "p95_ms": ms, "min_ms": ms,
                               "throughput": b / (ms / 1000.0)}  # fmt: skip
        result: dict[str, Any] = {
            "startup_s": cluster.startup.median_s,
            "cpu_ms_per_request": cluster.serving.cpu_ms_per_request,
            "latency": latency,
            "gpu_memory_used_mib": float(cluster.serving.model_memory_mib),
            "device": "sim",
        }
        if host_mib is not None:
            result["peak_rss_mib"] = host_mib
            result["cpu_memory_percent"] = 100.0 * host_mib * MIB / c.memory_bytes
        return result
