"""Job-scheduling policies for ``GpuJobScheduling-v0``, each with SB3's ``predict``.

| name | module | what it does |
|---|---|---|
| ``fifo`` | :mod:`~k8s_gpu_rl.baselines.jobs.fifo` | the user's baseline: first GPU whose (lagging) free memory fits, no reservation, no gang |
| ``sjf-predicted`` | :mod:`~k8s_gpu_rl.baselines.jobs.sjf` | shortest predicted job first, gang, HAMi's GPUs |
| ``fgd`` | :mod:`~k8s_gpu_rl.baselines.jobs.fgd` | fragmentation-gradient-descent placement (FGD, ATC '23) |
| ``optimal-allocation`` | :mod:`~k8s_gpu_rl.baselines.jobs.optimal` | the user's algorithm: predicted run + transfer order, predicted requests, reservation, CPU threshold 0.7 |
| ``optimal-allocation-0.8``, ``-0.9`` | same | the CPU-threshold ablations |

The clairvoyant bound is :func:`~k8s_gpu_rl.baselines.jobs.bound.clairvoyant_bound`; the
trained agent (``ppo``) is loaded by :mod:`k8s_gpu_rl.agents.jobs`.
"""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.baselines.jobs.base import JobPolicy
from k8s_gpu_rl.baselines.jobs.fgd import FgdPolicy
from k8s_gpu_rl.baselines.jobs.fifo import FifoPolicy
from k8s_gpu_rl.baselines.jobs.optimal import OptimalAllocationPolicy
from k8s_gpu_rl.baselines.jobs.sjf import SjfPredictedPolicy
from k8s_gpu_rl.config import suggest
from k8s_gpu_rl.errors import ConfigError

POLICIES = {
    "fifo": lambda: FifoPolicy(),
    "sjf-predicted": lambda: SjfPredictedPolicy(),
    "fgd": lambda: FgdPolicy(),
    "optimal-allocation": lambda: OptimalAllocationPolicy(),
    "optimal-allocation-0.8": lambda: OptimalAllocationPolicy(cpu_threshold=0.8),
    "optimal-allocation-0.9": lambda: OptimalAllocationPolicy(cpu_threshold=0.9),
}
BASELINES = ("fifo", "sjf-predicted", "fgd", "optimal-allocation")
"""What ``python -m evaluate --env jobs`` compares by default."""


def make_job_policy(name: str, env: Any) -> JobPolicy:
    """Build baseline ``name`` bound to ``env``."""
    if name not in POLICIES:
        raise ConfigError(
            f"job policy {name!r} is unknown{suggest(name, [*POLICIES, 'ppo'])}; "
            f"allowed: {', '.join([*POLICIES, 'ppo'])}"
        )
    return POLICIES[name]().bind(env)


__all__ = ["BASELINES", "POLICIES", "JobPolicy", "make_job_policy"]
