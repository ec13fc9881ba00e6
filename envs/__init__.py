"""Gymnasium environments of k8s-gpu-rl. Importing this package registers ``K8sGpu-v0``.

``gymnasium.make("k8s_gpu_rl:K8sGpu-v0", profile="high")`` builds
:class:`~k8s_gpu_rl.envs.k8s_gpu_env.K8sGpuEnv` on the simulated cluster
(``k8s_gpu_rl.envs.sim``, which itself imports no Gymnasium). The registration itself is
:func:`k8s_gpu_rl.register_envs`, run when the package root is imported.
"""

ENV_ID = "K8sGpu-v0"


def __getattr__(name: str):  # lazy: importing the package stays cheap for subprocess workers
    if name == "K8sGpuEnv":
        from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv

        return K8sGpuEnv
    raise AttributeError(name)


__all__ = ["ENV_ID", "K8sGpuEnv"]
