"""The job-scheduling world's configuration: sites, clusters, nodes, links, HAMi, timing.

Frozen dataclasses with a docstring per field, validated on construction; YAML maps onto
them through :func:`k8s_gpu_rl.config.from_dict`. ``envs/jobs/sim/worlds/user-sites.yaml``
is the default world, built from the user's setups (``../shared/FACTS.md``): V100 32 GB
pairs, RTX 3090 24 GB and RTX 3080 10 GB cards under HAMi, plus a far site with A100s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from k8s_gpu_rl.config import check, from_dict, read_yaml, suggest
from k8s_gpu_rl.envs.jobs.sim.truth import GPU_TYPES, TruthConfig
from k8s_gpu_rl.envs.sim.config import HamiConfig
from k8s_gpu_rl.errors import ConfigError

WORLDS_DIR = Path(__file__).parent / "worlds"


@dataclass(frozen=True)
class LinkConfig:
    """The network link from the submitting site to a cluster."""

    bandwidth_gbps: float = 1.0
    """Throughput of image / model / data transfers (Gbit/s)."""
    latency_s: float = 0.02
    """Fixed cost per transfer (s)."""

    def __post_init__(self) -> None:
        check(
            self.bandwidth_gbps > 0, f"bandwidth_gbps must be positive, got {self.bandwidth_gbps}"
        )
        check(self.latency_s >= 0, f"latency_s must be >= 0, got {self.latency_s}")

    def transfer_s(self, gib: float) -> float:
        """Seconds to move ``gib`` GiB (0 when nothing moves)."""
        return 0.0 if gib <= 0 else self.latency_s + gib * 8.0 * 1.073741824 / self.bandwidth_gbps


@dataclass(frozen=True)
class JobNodeConfig:
    """One node of a cluster."""

    name: str
    """Node name."""
    gpu_type: str = "Tesla V100-SXM2-32GB"
    """A key of :data:`~k8s_gpu_rl.envs.jobs.sim.truth.GPU_TYPES`."""
    gpus: int = 2
    """Number of GPUs of that type."""
    cpu_cores: float = 32.0
    """Allocatable CPU cores."""

    def __post_init__(self) -> None:
        check(
            self.gpu_type in GPU_TYPES,
            f"gpu_type {self.gpu_type!r} is unknown{suggest(self.gpu_type, GPU_TYPES)}; "
            f"allowed: {', '.join(GPU_TYPES)}",
        )
        check(1 <= self.gpus <= 16, f"gpus must be in 1..16, got {self.gpus}")
        check(self.cpu_cores > 0, f"cpu_cores must be positive, got {self.cpu_cores}")


@dataclass(frozen=True)
class JobClusterConfig:
    """One Kubernetes cluster with HAMi."""

    name: str
    """Cluster (and kubeconfig context) name."""
    nodes: tuple[JobNodeConfig, ...] = ()
    """Its GPU nodes."""
    link: LinkConfig = field(default_factory=LinkConfig)
    """Link from the submitting site."""
    hami: HamiConfig = field(default_factory=HamiConfig)
    """HAMi settings (deviceMemoryScaling > 1 lets allocations oversubscribe memory)."""
    cache_gib: float = 100.0
    """Image / model cache of the cluster's registry mirror (GiB, LRU)."""

    def __post_init__(self) -> None:
        check(len(self.nodes) >= 1, f"cluster {self.name!r}: at least one node is needed")
        check(self.cache_gib >= 0, f"cache_gib must be >= 0, got {self.cache_gib}")


@dataclass(frozen=True)
class ReservationConfig:
    """The controller's reservation rule for GPU-hungry jobs."""

    enabled: bool = True
    """Make reservations (policies decide whether they respect them)."""
    after_s: float = 900.0
    """A hungry job waiting longer than this gets a reservation."""
    hungry_gpus: int = 2
    """A job asking at least this many GPUs is hungry ..."""
    hungry_memory_fraction: float = 0.6
    """... and so is one whose per-worker request is at least this fraction of the
    smallest card it fits."""
    max_active: int = 2
    """At most this many reservations at once."""

    def __post_init__(self) -> None:
        check(self.after_s >= 0, f"after_s must be >= 0, got {self.after_s}")
        check(self.hungry_gpus >= 1, f"hungry_gpus must be >= 1, got {self.hungry_gpus}")
        check(self.max_active >= 0, f"max_active must be >= 0, got {self.max_active}")


@dataclass(frozen=True)
class WorldConfig:
    """Everything the job-scheduling simulator needs."""

    name: str = "user-sites"
    """A label for reports."""
    clusters: tuple[JobClusterConfig, ...] = ()
    """The clusters; at least one."""
    truth: TruthConfig = field(default_factory=TruthConfig)
    """Ground-truth noise and scaling."""
    reservation: ReservationConfig = field(default_factory=ReservationConfig)
    """Reservation rule."""
    scrape_interval_s: float = 60.0
    """Prometheus scrape interval of every cluster (the user's: once a minute)."""
    tick_s: float = 60.0
    """Periodic decision point even when nothing happens (s)."""
    load_s: float = 30.0
    """Container start plus model load before a job's memory is allocated (s)."""
    backoff_initial_s: float = 10.0
    """Retry delay after the first failure (Kubernetes Job: 10 s, doubled each time)."""
    backoff_max_s: float = 360.0
    """Retry delay cap (Kubernetes Job: 6 minutes)."""
    backoff_limit: int = 6
    """Failures after which a job is given up (Kubernetes Job backoffLimit default)."""
    cpu_per_gpu: float = 4.0
    """CPU cores a training worker uses (data loading)."""
    max_time_s: float = 7 * 86400.0
    """The simulation stops (truncated) at this time."""

    def __post_init__(self) -> None:
        check(len(self.clusters) >= 1, "clusters: at least one cluster is needed")
        names = [c.name for c in self.clusters]
        check(len(set(names)) == len(names), f"clusters: names must be unique, got {names}")
        for value, name in (
            (self.scrape_interval_s, "scrape_interval_s"),
            (self.tick_s, "tick_s"),
            (self.backoff_initial_s, "backoff_initial_s"),
            (self.max_time_s, "max_time_s"),
        ):
            check(value > 0, f"{name} must be positive, got {value}")
        check(self.load_s >= 0, f"load_s must be >= 0, got {self.load_s}")
        check(self.backoff_limit >= 0, f"backoff_limit must be >= 0, got {self.backoff_limit}")


def available_worlds() -> list[str]:
    """Names of the shipped worlds."""
    return sorted(p.stem for p in WORLDS_DIR.glob("*.yaml"))


def load_world(source: str | Path | WorldConfig | dict | None = None) -> WorldConfig:
    """A :class:`WorldConfig` from a shipped name, a YAML path, a mapping or itself."""
    if isinstance(source, WorldConfig):
        return source
    if source is None:
        source = "user-sites"
    if isinstance(source, dict):
        return from_dict(WorldConfig, source, "world")
    path = Path(source)
    if not path.suffix:
        names = available_worlds()
        if str(source) not in names:
            raise ConfigError(
                f"world {str(source)!r} is unknown{suggest(str(source), names)}; "
                f"shipped: {', '.join(names)}, or give a YAML path"
            )
        path = WORLDS_DIR / f"{source}.yaml"
    return from_dict(WorldConfig, read_yaml(path), str(path))
