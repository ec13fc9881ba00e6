"""The ``k8s`` backend: the env drives a real Kubernetes cluster (the user's MicroK8s).

:class:`~k8s_gpu_rl.envs.backends.k8s.backend.K8sBackend` scales the Triton Deployment and patches
its HAMi vGPU limits through the Kubernetes API (:mod:`k8s_gpu_rl.envs.backends.k8s.kube`), observes
through the cluster's Prometheus (``k8s_gpu_rl.envs.observation``'s PromQL), and measures the KPIs
from a real headless Locust run against the Triton Service. Settings:
:class:`~k8s_gpu_rl.envs.backends.k8s.options.K8sOptions`.
"""

from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions

__all__ = ["K8sOptions"]
