"""Gymnasium environments of k8s-gpu-rl. Importing this package registers ``K8sGpu-v0``.

``gymnasium.make("K8sGpu-v0", profile="high")`` builds :class:`~envs.k8s_gpu_env.K8sGpuEnv`
on the simulated cluster (``envs.sim``, which itself imports no Gymnasium).
"""

from gymnasium.envs.registration import register, registry

ENV_ID = "K8sGpu-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.k8s_gpu_env:K8sGpuEnv")


def __getattr__(name: str):  # lazy: `import envs` stays cheap for subprocess workers
    if name == "K8sGpuEnv":
        from envs.k8s_gpu_env import K8sGpuEnv

        return K8sGpuEnv
    raise AttributeError(name)


__all__ = ["ENV_ID", "K8sGpuEnv"]
