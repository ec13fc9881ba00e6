"""Backends behind :class:`~envs.k8s_gpu_env.K8sGpuEnv`: the seam is ``envs.backends.base.Backend``."""
