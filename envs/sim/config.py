"""The simulated cluster's configuration: every constant, typed, documented and validated.

The defaults describe the user's cluster (``../shared/FACTS.md``): one MicroK8s node with
one RTX 3080 (10 GB) shared through HAMi, Triton serving MobileNetV4-Conv-Small, and
kube-prometheus-stack scraping every 30 s. ``envs/sim/clusters/rtx3080.yaml`` states the
same values with their reasons; :func:`load_cluster_config` reads such a file (or a name
of a shipped one) so a user can describe their own cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from k8s_gpu_rl.config import check, from_dict, read_yaml, suggest
from k8s_gpu_rl.errors import ConfigError

CLUSTERS_DIR = Path(__file__).parent / "clusters"


@dataclass(frozen=True)
class GpuConfig:
    """One physical GPU."""

    model: str = "NVIDIA GeForce RTX 3080"
    """Model name, as DCGM's ``modelName`` label reports it."""
    memory_mib: int = 10240
    """Physical framebuffer in MiB."""
    speed: float = 1.0
    """Compute speed relative to the card the serving times were calibrated on."""

    def __post_init__(self) -> None:
        check(self.memory_mib > 0, f"memory_mib must be positive, got {self.memory_mib}")
        check(self.speed > 0, f"speed must be positive, got {self.speed}")


@dataclass(frozen=True)
class NodeConfig:
    """One Kubernetes node."""

    name: str = "microk8s-node"
    """Node name (Prometheus ``node``/``Hostname`` label)."""
    cpu_cores: float = 16.0
    """Allocatable CPU cores."""
    gpus: tuple[GpuConfig, ...] = (GpuConfig(),)
    """The node's GPUs."""

    def __post_init__(self) -> None:
        check(self.cpu_cores > 0, f"cpu_cores must be positive, got {self.cpu_cores}")


@dataclass(frozen=True)
class HamiConfig:
    """HAMi device plugin and scheduler settings (chart v2.10 names and defaults)."""

    device_split_count: int = 10
    """devicePlugin.deviceSplitCount: at most this many tasks on one GPU."""
    device_memory_scaling: float = 1.0
    """Registered memory = physical x this (above 1 oversubscribes)."""
    device_core_scaling: float = 1.0
    """Registered cores = 100 x this."""
    node_scheduler_policy: Literal["binpack", "spread"] = "binpack"
    """hami.io/node-scheduler-policy: binpack picks the fullest node, spread the emptiest."""
    gpu_scheduler_policy: Literal["binpack", "spread"] = "spread"
    """hami.io/gpu-scheduler-policy: which GPU on the chosen node."""
    core_limit_strength: float = 1.0
    """How strongly gpucores throttles (HAMi issue 786): 1 holds a pod to its share,
    0 lets it use the whole GPU when it runs alone."""
    token_bucket_s: float = 0.0
    """0: a pod's batches run at its share of the GPU (time-sliced: a batch takes
    work / share). > 0: HAMi-core's token bucket: batches run at full speed while the pod
    has busy-seconds in its bucket, which refills at its share and holds at most share x
    this many seconds; a batch launched with the bucket below zero waits until it is back
    at zero. Under sustained load both hold the pod to its share; at light load the
    bucket costs no latency. The local testbed's servers limit this way with 0.1 s."""
    core_utilization_policy: Literal["force", "default", "disable"] = "force"
    """HAMi-core's ``GPU_CORE_UTILIZATION_POLICY`` (the container environment variable the
    manifests and live backends set on the Triton container). ``force``: gpucores is
    enforced always, so a vGPU-hour is capacity the pod cannot exceed. ``default`` (what a
    container without the variable gets): enforced only while another task shares the
    GPU; a lone pod runs at the whole GPU's speed whatever its gpucores (HAMi issue 737).
    ``disable``: never enforced. The shipped clusters use ``force`` (README: why)."""
    contention_leak: float = 0.0625
    """The limiter's imperfection under contention: with two or more tasks busy on a GPU,
    each one's cap drifts this fraction of the way towards the mean of their caps. Two
    busy pods capped at 10 % and 90 % then run 0.125 : 0.875 = 1 : 7; HAMi issue 2863
    measured about 1 : 6-8 (this value is the band's centre; 0.028 and 0.107 its ends)."""

    def __post_init__(self) -> None:
        check(
            0.0 <= self.contention_leak <= 1.0,
            f"contention_leak must be in [0, 1], got {self.contention_leak}",
        )
        check(
            self.device_split_count >= 1,
            f"device_split_count must be >= 1, got {self.device_split_count}",
        )
        check(
            self.device_memory_scaling > 0,
            f"device_memory_scaling must be > 0, got {self.device_memory_scaling}",
        )
        check(
            self.device_core_scaling > 0,
            f"device_core_scaling must be > 0, got {self.device_core_scaling}",
        )
        check(
            0.0 <= self.core_limit_strength <= 1.0,
            f"core_limit_strength must be in [0, 1], got {self.core_limit_strength}",
        )
        check(
            self.token_bucket_s >= 0.0,
            f"token_bucket_s must be >= 0, got {self.token_bucket_s}",
        )


@dataclass(frozen=True)
class DeploymentConfig:
    """The Triton MobileNetV4 Deployment as the user applies it."""

    replicas: int = 1
    """Initial spec.replicas."""
    gpucores: int = 50
    """Initial nvidia.com/gpucores (percent of one GPU; 100 = exclusive)."""
    gpumem_mib: int = 5120
    """Initial nvidia.com/gpumem (MiB)."""
    cpu_request: float = 1.0
    """Container CPU request (cores): the HPA's utilisation is usage / request."""
    cpu_limit: float = 2.0
    """Container CPU limit (cores): how many requests the HTTP front end parses at once."""
    max_surge: float = 0.25
    """Rolling update maxSurge, a fraction of replicas (rounded up)."""
    max_unavailable: float = 0.25
    """Rolling update maxUnavailable, a fraction of replicas (rounded down)."""
    termination_grace_s: float = 30.0
    """terminationGracePeriodSeconds: in-flight requests still queued then are dropped."""
    endpoint_removal_s: float = 1.0
    """Delay until kube-proxy stops routing to a terminating pod."""

    def __post_init__(self) -> None:
        check(self.replicas >= 0, f"replicas must be >= 0, got {self.replicas}")
        check(0 <= self.gpucores <= 100, f"gpucores must be in 0..100, got {self.gpucores}")
        check(self.gpumem_mib > 0, f"gpumem_mib must be positive, got {self.gpumem_mib}")
        check(
            self.cpu_request > 0 and self.cpu_limit >= self.cpu_request,
            f"need 0 < cpu_request <= cpu_limit, got {self.cpu_request}, {self.cpu_limit}",
        )
        check(
            0 <= self.max_surge <= 1 and 0 <= self.max_unavailable <= 1,
            "max_surge and max_unavailable must be fractions in [0, 1]",
        )
        check(
            self.max_surge > 0 or self.max_unavailable > 0,
            "max_surge and max_unavailable cannot both be 0",
        )


@dataclass(frozen=True)
class StartupConfig:
    """Pod start-up: container start plus Triton start and model load, then readiness."""

    median_s: float = 25.0
    """Median time from scheduling to the model being loaded (log-normal)."""
    sigma: float = 0.25
    """Log-normal shape of the start-up time."""
    readiness_period_s: float = 5.0
    """Readiness probe period: the pod turns Ready at the first probe after loading."""
    crash_backoff_initial_s: float = 10.0
    """CrashLoopBackOff: first restart delay, doubled after each crash."""
    crash_backoff_max_s: float = 300.0
    """CrashLoopBackOff cap."""

    def __post_init__(self) -> None:
        check(self.median_s > 0, f"median_s must be positive, got {self.median_s}")
        check(self.sigma >= 0, f"sigma must be >= 0, got {self.sigma}")
        check(
            self.readiness_period_s > 0,
            f"readiness_period_s must be positive, got {self.readiness_period_s}",
        )


@dataclass(frozen=True)
class ServingConfig:
    """Triton and MobileNetV4-Conv-Small on the GPU."""

    model_name: str = "mobilenetv4"
    """Triton model name (the ``model`` metric label)."""
    max_batch_size: int = 8
    """config.pbtxt max_batch_size; the dynamic batcher's preferred size."""
    max_queue_delay_us: int = 500
    """dynamic_batching.max_queue_delay_microseconds."""
    batch_base_ms: float = 4.0
    """GPU time of a batch at the whole GPU: fixed part (kernel launches, copies)."""
    batch_per_item_ms: float = 0.3
    """GPU time per image in a batch at the whole GPU."""
    model_memory_mib: int = 1536
    """GPU memory a pod uses (CUDA context, ONNX Runtime arena, weights): FACTS 1.5 GB."""
    cpu_ms_per_request: float = 5.0
    """Pod CPU per request (HTTP, 602 KB tensor deserialisation), at one core."""
    idle_cpu_cores: float = 0.02
    """CPU a ready, idle Triton pod uses."""
    util_overread: float = 7.4
    """DCGM GPU_UTIL per unit of compute time at the whole GPU. GPU_UTIL is the share of
    time any kernel is resident, not of the SMs doing work: at batch 1, MobileNetV4's
    hundreds of small kernels keep the GPU "busy" far longer than the compute they do.
    Calibrated to the user's 43 % at 13 req/s, since the tight p95/p99 (74/81 ms against a
    72 ms mean) bound the compute on the latency path to a few ms per request."""

    def __post_init__(self) -> None:
        check(self.max_batch_size >= 1, f"max_batch_size must be >= 1, got {self.max_batch_size}")
        check(
            self.max_queue_delay_us >= 0,
            f"max_queue_delay_us must be >= 0, got {self.max_queue_delay_us}",
        )
        check(
            self.batch_base_ms > 0 and self.batch_per_item_ms >= 0, "batch times must be positive"
        )
        check(
            self.model_memory_mib > 0,
            f"model_memory_mib must be positive, got {self.model_memory_mib}",
        )
        check(
            self.cpu_ms_per_request >= 0,
            f"cpu_ms_per_request must be >= 0, got {self.cpu_ms_per_request}",
        )
        check(self.util_overread > 0, f"util_overread must be positive, got {self.util_overread}")


@dataclass(frozen=True)
class ClientCostConfig:
    """CPU time one Locust process spends on one inference request (ms of one core), by
    when it happens. All 0 (the default): the client-side work is folded into
    ``transport_median_ms``, as in the default calibration's binary-tensor client."""

    build: float = 0.0
    """In the task, before the request call: building the payload (for a JSON body, a
    1x3x224x224 FP32 tensor turned into a list of 150,528 floats). Locust's timer has not
    started, so it lengthens the users' cycle but not the latency Locust records."""
    send: float = 0.0
    """Inside the timed request call, before the request leaves: encoding the body (JSON
    of 150,528 floats is about 2.7 MB of text; a binary tensor is one 602 KB copy) and
    writing it to the socket."""
    receive: float = 0.0
    """Once the response is back: reading and parsing it and Locust's bookkeeping (timed)."""

    def __post_init__(self) -> None:
        for name in ("build", "send", "receive"):
            value = getattr(self, name)
            check(value >= 0.0, f"client_cost_ms.{name} must be >= 0 ms, got {value}")

    @property
    def total_ms(self) -> float:
        """CPU per inference request, all three parts."""
        return self.build + self.send + self.receive


@dataclass(frozen=True)
class RequestMixConfig:
    """The users' Locust tasks: inference and cheap GETs (health, model metadata), one task
    per think time, picked by weight (Locust ``@task(weight)``). Cheap GETs never reach the
    GPU and are not in Triton's inference counters; Locust counts them in its totals."""

    inference: float = 1.0
    """Weight of the inference task."""
    cheap: float = 0.0
    """Total weight of the cheap GET tasks (0: inference only). The user's locustfile had
    inference and three GETs at 5 : 1 : 1 : 1, i.e. inference 5, cheap 3."""
    cheap_cost_ms: float = 2.0
    """Locust CPU per cheap GET (HTTP client and Locust's bookkeeping), half spent sending
    and half reading the reply."""
    cheap_round_trip_ms: float = 2.0
    """A cheap GET's round trip beyond the client: network and Triton's HTTP front end
    (median; log-normal with ``transport_sigma``)."""

    def __post_init__(self) -> None:
        check(self.inference > 0, f"request_mix.inference must be > 0, got {self.inference}")
        check(self.cheap >= 0, f"request_mix.cheap must be >= 0, got {self.cheap}")
        check(
            self.cheap_cost_ms >= 0,
            f"request_mix.cheap_cost_ms must be >= 0, got {self.cheap_cost_ms}",
        )
        check(
            self.cheap_round_trip_ms > 0,
            f"request_mix.cheap_round_trip_ms must be > 0, got {self.cheap_round_trip_ms}",
        )

    @property
    def cheap_fraction(self) -> float:
        """Fraction of the users' requests that are cheap GETs."""
        return self.cheap / (self.inference + self.cheap)


@dataclass(frozen=True)
class ClientConfig:
    """Locust and the network between it and the Service."""

    transport_median_ms: float = 57.0
    """Median round-trip transport and client-side (de)serialisation (FACTS: most of the 72 ms)."""
    transport_sigma: float = 0.02
    """Log-normal shape of the transport time."""
    tail_probability: float = 0.02
    """Probability that a request meets a slow path (retransmit, GC pause) ..."""
    tail_mean_ms: float = 10.0
    """... which adds an exponential delay of this mean."""
    uplink_ms: float = 1.0
    """Part of the transport before the request reaches the pod."""
    refused_ms: float = 1.0
    """Time to a connection refusal when the Service has no ready endpoint."""
    timeout_s: float = 10.0
    """Client timeout: slower requests fail."""
    sticky_connections: bool = False
    """True: kube-proxy balances per kept-alive connection (a user keeps its pod until it
    goes away); False: per request."""
    locust_processes: int | None = None
    """Locust processes the users are spread over (``--processes``; users dealt round
    robin). Each is one gevent loop on one core: it runs one request's client-side work
    (``client_cost_ms``, the cheap GETs' cost) at a time, first ready first served, so
    users queue on it and, once they ask more than it can do, the achieved rate stops at
    its capacity while the latency Locust records grows. None: enough processes that the
    client never binds (one per user: the costs add latency, no queueing)."""
    client_cost_ms: ClientCostConfig = field(default_factory=ClientCostConfig)
    """Locust's CPU per inference request (build / send / receive, ms)."""
    request_mix: RequestMixConfig = field(default_factory=RequestMixConfig)
    """The users' task mix (default: inference only)."""

    def __post_init__(self) -> None:
        check(
            self.transport_median_ms > 0,
            f"transport_median_ms must be positive, got {self.transport_median_ms}",
        )
        check(
            0 <= self.tail_probability <= 1,
            f"tail_probability must be in [0, 1], got {self.tail_probability}",
        )
        check(self.timeout_s > 0, f"timeout_s must be positive, got {self.timeout_s}")
        check(
            0 <= self.uplink_ms <= self.transport_median_ms,
            "uplink_ms must be in [0, transport_median_ms]",
        )
        check(
            self.locust_processes is None or self.locust_processes >= 1,
            f"locust_processes must be >= 1 (or null: one per user), got {self.locust_processes}",
        )

    @property
    def models_load_generator(self) -> bool:
        """Whether the simulator models Locust's CPU (off: the default cluster's path)."""
        return (
            self.locust_processes is not None
            or self.client_cost_ms.total_ms > 0
            or self.request_mix.cheap > 0
        )

    def process_capacity_rps(self) -> float:
        """Requests per second (all kinds, in the mix's proportions) one Locust process can
        drive when its CPU is busy all the time: 1 / its mean CPU per request (inf: free)."""
        mix = self.request_mix
        per_request_ms = (
            1 - mix.cheap_fraction
        ) * self.client_cost_ms.total_ms + mix.cheap_fraction * mix.cheap_cost_ms
        return 1000.0 / per_request_ms if per_request_ms > 0 else float("inf")


@dataclass(frozen=True)
class MetricsConfig:
    """What Prometheus holds and how late it is."""

    scrape_interval_s: float = 30.0
    """Prometheus scrape interval (kube-prometheus-stack default 30 s; the user's multi-cluster 60 s)."""
    dcgm_interval_s: float = 30.0
    """dcgm-exporter collection interval."""
    rate_window_s: float = 60.0
    """Range of the rate()/avg_over_time() windows in the observation's PromQL."""

    def __post_init__(self) -> None:
        check(
            self.scrape_interval_s > 0,
            f"scrape_interval_s must be positive, got {self.scrape_interval_s}",
        )
        check(
            self.dcgm_interval_s > 0,
            f"dcgm_interval_s must be positive, got {self.dcgm_interval_s}",
        )
        check(
            self.rate_window_s >= 2 * self.scrape_interval_s,
            f"rate_window_s ({self.rate_window_s}) must hold two scrapes ({self.scrape_interval_s} s apart)",
        )


FaultKind = Literal["gpu_failure", "node_failure", "pod_crash", "scrape_gap"]


@dataclass(frozen=True)
class FaultConfig:
    """A fault injected at a given time of the episode."""

    kind: FaultKind
    """gpu_failure / node_failure (pods on it die; it is gone for duration_s), pod_crash
    (one pod's container dies and restarts), scrape_gap (Prometheus misses scrapes)."""
    at_s: float
    """Seconds after the episode start."""
    duration_s: float = 60.0
    """How long the GPU/node is gone or scrapes are missed (ignored for pod_crash)."""
    target: int = 0
    """GPU index (cluster-wide), node index, or the n-th running pod."""

    def __post_init__(self) -> None:
        check(self.at_s >= 0, f"at_s must be >= 0, got {self.at_s}")
        check(self.duration_s > 0, f"duration_s must be positive, got {self.duration_s}")
        check(self.target >= 0, f"target must be >= 0, got {self.target}")


@dataclass(frozen=True)
class TenantConfig:
    """A co-located best-effort tenant: another pod on one GPU (e.g. a batch job) that is
    always busy and uses whatever compute the inference pods leave. Its progress is the
    KPI ``tenant_gpu_seconds``, so a large inference share shows up as work it could not
    do. HAMi places it like any pod (it takes a task slot, memory and its cores)."""

    gpu: int = 0
    """Cluster-wide index of the GPU it runs on."""
    gpucores: int = 0
    """Its nvidia.com/gpucores; 0: no core limit (HAMi's default for a pod that sets none),
    the usual form of a best-effort job."""
    gpumem_mib: int = 2048
    """Its nvidia.com/gpumem (MiB)."""

    def __post_init__(self) -> None:
        check(self.gpu >= 0, f"gpu must be >= 0, got {self.gpu}")
        check(0 <= self.gpucores <= 100, f"gpucores must be in [0, 100], got {self.gpucores}")
        check(self.gpumem_mib > 0, f"gpumem_mib must be positive, got {self.gpumem_mib}")


@dataclass(frozen=True)
class ClusterConfig:
    """Everything the simulated cluster needs; see ``envs/sim/clusters/rtx3080.yaml``."""

    name: str = "rtx3080"
    """A label for reports."""
    nodes: tuple[NodeConfig, ...] = (NodeConfig(),)
    """The cluster's nodes."""
    hami: HamiConfig = field(default_factory=HamiConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    startup: StartupConfig = field(default_factory=StartupConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    faults: tuple[FaultConfig, ...] = ()
    """Injected faults (empty: none)."""
    tenant: TenantConfig | None = None
    """A co-located best-effort tenant (None: the GPUs serve inference only)."""
    max_pods: int = 32
    """Pod slots the simulator allocates (replicas plus surge plus terminating)."""

    def __post_init__(self) -> None:
        check(len(self.nodes) >= 1, "nodes: at least one node is needed")
        check(self.max_pods >= 2, f"max_pods must be >= 2, got {self.max_pods}")
        n_gpus = sum(len(n.gpus) for n in self.nodes)
        check(
            self.tenant is None or self.tenant.gpu < n_gpus,
            f"tenant.gpu must name one of the cluster's {n_gpus} GPUs (0..{n_gpus - 1}), "
            f"got {self.tenant.gpu if self.tenant else None}",
        )

    @property
    def gpus(self) -> list[tuple[int, GpuConfig]]:
        """(node index, GPU) for every GPU, in cluster-wide GPU index order."""
        return [(i, g) for i, node in enumerate(self.nodes) for g in node.gpus]


def available_clusters() -> list[str]:
    """Names of the shipped cluster descriptions."""
    return sorted(p.stem for p in CLUSTERS_DIR.glob("*.yaml"))


def load_cluster_config(spec: str | Path | ClusterConfig | dict | None = None) -> ClusterConfig:
    """A :class:`ClusterConfig` from a shipped name, a YAML path, a dict, or the default."""
    if spec is None:
        return ClusterConfig()
    if isinstance(spec, ClusterConfig):
        return spec
    if isinstance(spec, dict):
        return from_dict(ClusterConfig, spec, "cluster")
    path = Path(spec)
    if not path.suffix:
        names = available_clusters()
        if str(spec) not in names:
            raise ConfigError(
                f"unknown cluster {str(spec)!r}{suggest(str(spec), names)}; "
                f"shipped: {', '.join(names)}, or give a path to a YAML file"
            )
        path = CLUSTERS_DIR / f"{spec}.yaml"
    return from_dict(ClusterConfig, read_yaml(path), str(path))
