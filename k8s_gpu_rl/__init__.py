"""k8s-gpu-rl: RL autoscaling of GPU inference on Kubernetes, against the HPA.

One import root. The repository keeps the layout the user asked for (``envs/``,
``agents/``, ``baselines/``, ``evaluation/``, ``loadprofiles/`` beside this folder);
``pyproject.toml`` maps those folders into this package, so a wheel installs them as
``k8s_gpu_rl.envs``, ``k8s_gpu_rl.agents``, ... and nothing else at top level. In a
source tree (a checkout, or the Locust ConfigMap of ``scripts/k8s/locust``) the same
names resolve to the folders beside this one.

Importing this package registers the Gymnasium environments, so
``gymnasium.make("k8s_gpu_rl:K8sGpu-v0", profile="high")`` works in a fresh interpreter
(Gymnasium imports the module named before the colon). Registration is lazy: it names
the entry point and imports nothing of the simulator.
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

_here = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.isdir(_os.path.join(_here, "loadprofiles")):  # a source tree, not a wheel
    __path__.append(_os.path.dirname(_here))  # type: ignore[name-defined]  # noqa: F821

ENV_IDS = {
    "K8sGpu-v0": "k8s_gpu_rl.envs.k8s_gpu_env:K8sGpuEnv",
    "GpuJobScheduling-v0": "k8s_gpu_rl.envs.jobs.env:GpuJobSchedulingEnv",
}
"""Every environment this package registers, id -> entry point."""


def register_envs() -> None:
    """Register :data:`ENV_IDS` with Gymnasium (idempotent; a no-op without Gymnasium)."""
    try:
        from gymnasium.envs.registration import register, registry
    except ImportError:  # e.g. the Locust image, which needs only the load profiles
        return
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)


register_envs()
