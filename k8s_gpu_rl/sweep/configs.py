"""Resource configurations of a sweep: one entry per (CPU, memory, vGPU cores, vGPU memory).

A configurations file is YAML or JSON, either a list of entries or a mapping with a
``configurations:`` list (``data/configurations.yaml`` ships the user's nine)::

    configurations:
      - {name: low-resource, cpu_cores: 1, memory: 1Gi, gpucores: 25, gpumem_mib: 6000}

The GPU share is ``gpucores`` (HAMi's ``nvidia.com/gpucores``: percent of one GPU). The
user's notes write it as ``nvidia.com/gpu: 0.25``, which HAMi rejects: ``nvidia.com/gpu``
counts *physical* GPUs. ``gpu_fraction: 0.25`` is accepted instead of ``gpucores`` and
mapped to ``gpucores: 25``. A malformed entry raises :class:`ConfigError` naming the file,
the entry (index and name) and the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from k8s_gpu_rl.config import check, from_dict, read_yaml
from k8s_gpu_rl.errors import ConfigError

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_CONFIGURATIONS = DATA_DIR / "configurations.yaml"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {
    None: 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}
GIB = 2**30
MIB = 2**20


def memory_bytes(quantity: str | int | float) -> int:
    """Bytes of a Kubernetes memory quantity (``1Gi``, ``512Mi``, ``2G`` or a number)."""
    if isinstance(quantity, bool):
        raise ConfigError(f"not a memory quantity: {quantity!r}")
    if isinstance(quantity, int | float):
        return int(quantity)
    match = _QUANTITY.match(str(quantity).strip())
    if not match:
        raise ConfigError(f"not a memory quantity: {quantity!r} (use e.g. 1Gi, 512Mi, 2G or bytes)")
    return int(Fraction(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class _RawConfiguration:
    """One entry as written in the file (before gpu_fraction is mapped to gpucores)."""

    name: str
    """DNS-1123 label: it becomes part of the Pod name."""
    cpu_cores: float
    """CPU limit (and request) in cores."""
    memory: str
    """Memory limit (and request) as a Kubernetes quantity, e.g. 1Gi."""
    gpumem_mib: int
    """nvidia.com/gpumem: GPU memory in MiB."""
    gpucores: int | None = None
    """nvidia.com/gpucores: percent of one GPU (1..100)."""
    gpu_fraction: float | None = None
    """Alternative to gpucores: the share as a fraction (0.25 -> gpucores 25)."""


@dataclass(frozen=True)
class ResourceConfiguration:
    """One resource configuration of the sweep."""

    name: str
    """DNS-1123 label: it becomes part of the Pod name."""
    cpu_cores: float
    """CPU limit (and request) in cores."""
    memory: str
    """Memory limit (and request) as a Kubernetes quantity, e.g. 1Gi."""
    gpucores: int
    """nvidia.com/gpucores: percent of one GPU (1..100)."""
    gpumem_mib: int
    """nvidia.com/gpumem: GPU memory in MiB."""

    def __post_init__(self) -> None:
        check(
            bool(_NAME.match(self.name)) and len(self.name) <= 40,
            f"name must be a lower-case DNS-1123 label of at most 40 characters, got {self.name!r}",
        )
        check(self.cpu_cores > 0, f"cpu_cores must be positive, got {self.cpu_cores}")
        check(memory_bytes(self.memory) > 0, f"memory must be positive, got {self.memory!r}")
        check(1 <= self.gpucores <= 100, f"gpucores must be in 1..100, got {self.gpucores}")
        check(self.gpumem_mib > 0, f"gpumem_mib must be positive, got {self.gpumem_mib}")

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.memory)

    @property
    def memory_gb(self) -> float:
        """Memory limit in GiB (the results' ``memory_gb`` column)."""
        return self.memory_bytes / GIB

    @property
    def gpu_ratio(self) -> float:
        """The GPU share as a fraction (gpucores / 100)."""
        return self.gpucores / 100.0


def parse_configuration(entry: Any, where: str) -> ResourceConfiguration:
    """One entry to a :class:`ResourceConfiguration`; errors start with ``where``."""
    raw = from_dict(_RawConfiguration, _normalise(entry, where), where)
    if (raw.gpucores is None) == (raw.gpu_fraction is None):
        raise ConfigError(f"{where}: give exactly one of gpucores (1..100) or gpu_fraction (0..1]")
    gpucores = raw.gpucores
    if raw.gpu_fraction is not None:
        if not 0 < raw.gpu_fraction <= 1:
            raise ConfigError(
                f"{where}.gpu_fraction: must be in (0, 1], got {raw.gpu_fraction} "
                "(nvidia.com/gpu counts physical GPUs; the share is gpucores)"
            )
        gpucores = round(raw.gpu_fraction * 100)
    try:
        memory_bytes(raw.memory)
        return ResourceConfiguration(
            raw.name, raw.cpu_cores, raw.memory, int(gpucores or 0), raw.gpumem_mib
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _normalise(entry: Any, where: str) -> Any:
    if isinstance(entry, dict) and isinstance(entry.get("memory"), int | float):
        entry = {**entry, "memory": str(entry["memory"])}
    if isinstance(entry, dict) and "cpu_cores" in entry and isinstance(entry["cpu_cores"], str):
        raise ConfigError(f"{where}.cpu_cores: expected a number, got {entry['cpu_cores']!r}")
    return entry


def load_configurations(path: str | Path | None = None) -> list[ResourceConfiguration]:
    """Read a configurations file (YAML or JSON); the shipped nine when ``path`` is None."""
    path = Path(path) if path is not None else DEFAULT_CONFIGURATIONS
    data = _read(path)
    if isinstance(data, dict):
        if set(data) != {"configurations"}:
            raise ConfigError(f"{path}: expected a list or a mapping with one key 'configurations'")
        data = data["configurations"]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: expected a non-empty list of configurations")
    out: list[ResourceConfiguration] = []
    for i, entry in enumerate(data):
        name = entry.get("name") if isinstance(entry, dict) else None
        out.append(parse_configuration(entry, f"{path}: configuration {i} ({name!r})"))
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: configuration names must be unique, repeated: {dupes}")
    return out


def select(configurations: list[ResourceConfiguration], names: list[str] | None) -> list:
    """The configurations named in ``names`` (all when None), in the order given."""
    if not names:
        return list(configurations)
    from k8s_gpu_rl.config import suggest

    by_name = {c.name: c for c in configurations}
    for n in names:
        if n not in by_name:
            raise ConfigError(
                f"unknown configuration {n!r}{suggest(n, by_name)}; allowed: {', '.join(by_name)}"
            )
    return [by_name[n] for n in names]


def _read(path: Path) -> Any:
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read file ({exc.strerror or exc})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    return read_yaml(path)
