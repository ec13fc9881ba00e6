"""Backends behind :class:`~k8s_gpu_rl.envs.k8s_gpu_env.K8sGpuEnv`: the seam is ``k8s_gpu_rl.envs.backends.base.Backend``."""
