"""Settings of the Kubernetes backend that no cluster config holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from k8s_gpu_rl.config import check
from k8s_gpu_rl.envs.backends.loadgen import LoadGeneratorOptions


@dataclass(frozen=True)
class K8sOptions:
    """Where the Deployment, the Service and Prometheus are, and the safety limits.

    Pass as ``K8sGpuEnv(backend="k8s", backend_options={...})``.
    """

    namespace: str = "k8s-gpu-rl"
    """Namespace of the Triton Deployment (``scripts/k8s/base``)."""
    deployment: str = "triton"
    """The Deployment the backend scales and patches."""
    container: str = "triton"
    """The container whose ``nvidia.com/gpucores`` / ``nvidia.com/gpumem`` limits it patches."""
    model: str = "mobilenetv4"
    """Triton model name (the PromQL's ``model`` label and Locust's target model)."""
    service_url: str = "http://127.0.0.1:8000"
    """The Triton Service's HTTP URL Locust sends to, e.g. after
    ``kubectl -n k8s-gpu-rl port-forward svc/triton 8000:8000``."""
    prometheus_url: str = "http://127.0.0.1:9090"
    """The cluster's Prometheus (kube-prometheus-stack), e.g. after a port-forward."""
    kubeconfig: str | None = None
    """Kubeconfig file; None: the in-cluster ServiceAccount if ``KUBERNETES_SERVICE_HOST``
    is set, else the default kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``)."""
    context: str | None = None
    """Kubeconfig context; None: the current context."""
    managed_by_label: str = "app.kubernetes.io/managed-by=k8s-gpu-rl"
    """``key=value`` the Deployment must carry; the backend touches no other Deployment."""
    scheduler_name: str | None = None
    """None: leave ``spec.template.spec.schedulerName`` as it is; else set it with the share."""
    pod_annotations: dict[str, str] = field(default_factory=dict)
    """Pod-template annotations set with every share patch (e.g. ``hami.io/resource-pool``)."""
    core_utilization_policy: Literal["force", "default", "disable"] | None = "force"
    """``GPU_CORE_UTILIZATION_POLICY`` set on the Triton container with every share patch
    (and at reset when the container has another value): HAMi-core enforces gpucores
    always (``force``, what the simulated clusters assume), only while the GPU is shared
    (``default``), or never. None: leave the container's environment as it is."""
    gpus_total: int = 1
    """Physical GPUs HAMi shares between the pods (the capacity bound below)."""
    max_gpucores_per_gpu: int = 100
    """Total gpucores one GPU may hand out: ``replicas x gpucores <= gpus_total x this``."""
    max_replicas: int = 8
    """Largest replica count the backend will ever request."""
    dry_run: bool = False
    """Print each mutating request (scale, patch, HPA) as JSON on stderr instead of sending it."""
    stale_after_s: float = 90.0
    """An observation whose newest sample is older than this (or a failed query) is stale:
    ``apply()`` then holds the current setting."""
    stop_after_s: float = 600.0
    """Stale this long: the run stops with a :class:`BackendError`."""
    api_retries: int = 5
    """Attempts per Kubernetes API call (409, 429, 5xx and connection errors are retried)."""
    rollout_timeout_s: float = 300.0
    """How long ``reset()`` waits for the Deployment's rollout to finish."""
    pod_poll_s: float = 2.0
    """Pod list period while an interval runs (integrates vGPU- and replica-seconds)."""
    api_timeout_s: float = 10.0
    """Read timeout of one Kubernetes API request."""
    prometheus_timeout_s: float = 5.0
    """Timeout of one Prometheus query."""
    load_generator: LoadGeneratorOptions = field(default_factory=LoadGeneratorOptions)
    """Locust's process count (on the machine running the backend) and when an interval
    counts as load-generator bound (``k8s_gpu_rl.envs.backends.loadgen``)."""

    def __post_init__(self) -> None:
        key, sep, value = self.managed_by_label.partition("=")
        check(
            bool(key and sep and value),
            f"managed_by_label must be key=value, got {self.managed_by_label!r}",
        )
        check(self.gpus_total >= 1, f"gpus_total must be >= 1, got {self.gpus_total}")
        check(
            1 <= self.max_gpucores_per_gpu <= 100,
            f"max_gpucores_per_gpu must be in 1..100, got {self.max_gpucores_per_gpu}",
        )
        check(self.max_replicas >= 1, f"max_replicas must be >= 1, got {self.max_replicas}")
        check(self.api_retries >= 1, f"api_retries must be >= 1, got {self.api_retries}")
        for name in ("stale_after_s", "stop_after_s", "rollout_timeout_s", "pod_poll_s"):
            check(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("api_timeout_s", "prometheus_timeout_s"):
            check(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def label(self) -> tuple[str, str]:
        """``managed_by_label`` as (key, value)."""
        key, _, value = self.managed_by_label.partition("=")
        return key.strip(), value.strip()
