"""The ``k8s`` backend: the env drives a real Kubernetes cluster (the user's MicroK8s).

:class:`~envs.backends.k8s.backend.K8sBackend` scales the Triton Deployment and patches
its HAMi vGPU limits through the Kubernetes API (:mod:`envs.backends.k8s.kube`), observes
through the cluster's Prometheus (``envs.observation``'s PromQL), and measures the KPIs
from a real headless Locust run against the Triton Service. Settings:
:class:`~envs.backends.k8s.options.K8sOptions`.
"""

from envs.backends.k8s.options import K8sOptions

__all__ = ["K8sOptions"]
