"""Jobs as submitted: the spec, a seeded queue generator, and the replay format.

A job is what the user's controller receives: a YAML with annotations ``model_name``,
``data_size`` and ``epoch`` (``../shared/SEEDS.md`` B), a GPU count and the HAMi requests
per worker (``nvidia.com/gpumem`` MiB, ``nvidia.com/gpucores`` %). Its true memory need and
run time are not part of it: they come from :mod:`~k8s_gpu_rl.envs.jobs.sim.truth`.

Replay format (YAML or CSV, one job per row/item) with the columns of :class:`JobSpec`:
``job_id, arrival_s, model_name, data_size, epoch, gpus, gpumem_mib, gpucores``. Shipped
queues live in ``envs/jobs/queues/`` and are named by their file stem.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from k8s_gpu_rl.config import check, from_dict, read_yaml, suggest
from k8s_gpu_rl.envs.jobs.sim.truth import MODELS
from k8s_gpu_rl.errors import ConfigError

QUEUES_DIR = Path(__file__).resolve().parent.parent / "queues"
COLUMNS = (
    "job_id",
    "arrival_s",
    "model_name",
    "data_size",
    "epoch",
    "gpus",
    "gpumem_mib",
    "gpucores",
)


@dataclass(frozen=True)
class JobSpec:
    """One submitted job."""

    job_id: str
    """Unique name (the Kubernetes Job's name stem)."""
    arrival_s: float
    """Submission time after the queue's start (s)."""
    model_name: str
    """Annotation ``model_name``: a key of the model catalogue."""
    data_size: float
    """Annotation ``data_size``: training data (GiB)."""
    epoch: int
    """Annotation ``epoch``: training epochs."""
    gpus: int = 1
    """Workers, one GPU each (``nvidia.com/gpu: 1`` per worker pod)."""
    gpumem_mib: int = 8000
    """The user's ``nvidia.com/gpumem`` per worker (MiB; 0 = the whole card)."""
    gpucores: int = 0
    """The user's ``nvidia.com/gpucores`` per worker (0 = unset, 100 = exclusive)."""

    def __post_init__(self) -> None:
        check(
            self.model_name in MODELS,
            f"model_name {self.model_name!r} is unknown{suggest(self.model_name, MODELS)}",
        )
        check(self.arrival_s >= 0, f"arrival_s must be >= 0, got {self.arrival_s}")
        check(self.data_size > 0, f"data_size must be positive, got {self.data_size}")
        check(self.epoch >= 1, f"epoch must be >= 1, got {self.epoch}")
        check(1 <= self.gpus <= 16, f"gpus must be in 1..16, got {self.gpus}")
        check(self.gpumem_mib >= 0, f"gpumem_mib must be >= 0, got {self.gpumem_mib}")
        check(0 <= self.gpucores <= 100, f"gpucores must be in 0..100, got {self.gpucores}")

    @property
    def family(self) -> str:
        return MODELS[self.model_name].family


@dataclass(frozen=True)
class GeneratorConfig:
    """The seeded random queue generator."""

    jobs: int = 40
    """Number of jobs."""
    mean_interarrival_s: float = 120.0
    """Mean gap between submissions (exponential)."""
    models: tuple[str, ...] = tuple(MODELS)
    """Models drawn uniformly."""
    multi_gpu_probability: float = 0.15
    """Probability that a job asks 2 or 4 workers."""
    under_request_probability: float = 0.2
    """Probability that the user's gpumem is below the model's need (copied from another job)."""
    target_runtime_s: tuple[float, float] = (600.0, 5400.0)
    """Range of the noise-free V100 run time the data size and epochs are chosen for."""

    def __post_init__(self) -> None:
        check(self.jobs >= 1, f"jobs must be >= 1, got {self.jobs}")
        check(self.mean_interarrival_s > 0, "mean_interarrival_s must be positive")
        for m in self.models:
            check(m in MODELS, f"models: {m!r} is unknown{suggest(m, MODELS)}")


def generate_queue(config: GeneratorConfig, rng: np.random.Generator) -> list[JobSpec]:
    """A random queue: exponential arrivals, catalogue models, the user's usual requests."""
    from k8s_gpu_rl.envs.jobs.sim.truth import REFERENCE, TruthConfig, mean_runtime_s

    jobs, t = [], 0.0
    for i in range(config.jobs):
        t += float(rng.exponential(config.mean_interarrival_s)) if i else 0.0
        model = MODELS[config.models[int(rng.integers(len(config.models)))]]
        gpus = int(rng.choice([2, 4])) if rng.random() < config.multi_gpu_probability else 1
        epoch = int(rng.choice([1, 2, 3, 5, 10, 20, 50, 100]))
        unit = mean_runtime_s(model, REFERENCE, 1.0, epoch, gpus, TruthConfig())
        target = float(np.exp(rng.uniform(*np.log(config.target_runtime_s))))
        data = float(np.clip(round(target / unit, 1), 0.1, 500.0))
        need = model.memory_mib
        under = rng.random() < config.under_request_probability
        factor = rng.uniform(0.95, 1.05) if under else rng.uniform(1.15, 1.5)
        gpumem = int(min(40960, round(need * factor / 500.0) * 500))
        cores = int(rng.choice([0, 50, 100], p=[0.5, 0.3, 0.2]))
        jobs.append(
            JobSpec(f"job-{i:03d}", round(t, 1), model.name, data, epoch, gpus, gpumem, cores)
        )
    return jobs


def available_queues() -> list[str]:
    """Names of the shipped queues."""
    return sorted({p.stem for p in QUEUES_DIR.iterdir() if p.suffix in (".yaml", ".csv")})


def queue_path(name_or_path: str | Path) -> Path:
    """The file of a shipped queue name, or the path itself."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".csv"):
        if not path.is_file():
            raise ConfigError(f"queue file {str(path)!r} does not exist")
        return path
    for suffix in (".yaml", ".csv"):
        if (QUEUES_DIR / f"{path}{suffix}").is_file():
            return QUEUES_DIR / f"{path}{suffix}"
    names = available_queues()
    raise ConfigError(
        f"queue {str(name_or_path)!r} is unknown{suggest(str(name_or_path), names)}; "
        f"shipped: {', '.join(names)}, or give a .yaml/.csv path"
    )


def load_queue(name_or_path: str | Path) -> list[JobSpec]:
    """Read a queue (YAML list or mapping with ``jobs:``, or CSV with a header)."""
    path = queue_path(name_or_path)
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = [_typed_row(r, path) for r in csv.DictReader(f)]
    else:
        data = read_yaml(path)
        rows = data.get("jobs") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise ConfigError(f"{path}: expected a list of jobs (or a mapping with 'jobs:')")
    jobs = [from_dict(JobSpec, r, f"{path}[{i}]") for i, r in enumerate(rows)]
    ids = [j.job_id for j in jobs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: job_id values must be unique")
    return sorted(jobs, key=lambda j: (j.arrival_s, j.job_id))


def _typed_row(row: dict[str, str], path: Path) -> dict[str, object]:
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown column(s) {sorted(unknown)}; allowed: {', '.join(COLUMNS)}"
        )
    out: dict[str, object] = {}
    for key, text in row.items():
        try:
            if key in ("job_id", "model_name"):
                out[key] = text
            elif key in ("arrival_s", "data_size"):
                out[key] = float(text)
            else:
                out[key] = int(text)
        except ValueError:
            raise ConfigError(f"{path}: column {key!r}: not a number: {text!r}") from None
    return out


def save_queue(jobs: list[JobSpec], path: str | Path) -> None:
    """Write ``jobs`` in the replay format (by suffix: .csv or .yaml)."""
    from k8s_gpu_rl.io import atomic_write

    rows = [dataclasses.asdict(j) for j in jobs]

    def write(tmp: Path) -> None:
        if Path(path).suffix == ".csv":
            with tmp.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS)
                w.writeheader()
                w.writerows(rows)
        else:
            tmp.write_text(yaml.safe_dump({"jobs": rows}, sort_keys=False))

    atomic_write(path, write)
