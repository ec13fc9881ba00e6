"""Load profiles: how many Locust users hit Triton, and when.

A :class:`LoadProfile` is a list of :class:`Stage` s, each holding a user count for a
number of seconds, plus the users' think time (:class:`WaitTime`). The same profile drives
the real Locust run (``loadprofiles/locustfile.py``, through :meth:`LoadProfile.tick`) and
the simulated cluster (through :func:`user_events`, the user count over time as Locust's
runner produces it), so training and live runs see the same load.

Profiles ship as YAML files next to this module (``low``, ``medium``, ``high``, ``mixed``:
the training defaults) and in ``heldout/`` (shapes no training default uses, for
generalisation tests); :func:`load_profile` reads one by name, any YAML file by path, or
generates one from ``random:seed=N,...`` or a YAML file with a ``generator:`` mapping
(``loadprofiles/generator.py``). This module imports neither Locust nor gevent: training
processes import it, and gevent's monkey-patching must stay out of them.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

from k8s_gpu_rl.config import check, from_dict, read_yaml, suggest
from k8s_gpu_rl.errors import ConfigError

PROFILES_DIR = Path(__file__).resolve().parent
"""Folder of the shipped profile files (``<name>.yaml``)."""
HELDOUT_DIR = PROFILES_DIR / "heldout"
"""Folder of the held-out profiles (``heldout/<name>.yaml``), loaded by name like the others."""

_FILE_FIELDS = ("name", "description", "wait_time", "stages")
_REQUIRED_FILE_FIELDS = ("name", "wait_time", "stages")
_T = TypeVar("_T")


@dataclass(frozen=True)
class WaitTime:
    """Seconds a user waits between two of its requests, uniform in [min, max] (Locust ``between``)."""

    min: float
    """Shortest wait in seconds (>= 0)."""
    max: float
    """Longest wait in seconds (>= min)."""

    def __post_init__(self) -> None:
        check(math.isfinite(self.min) and self.min >= 0, f"min: must be >= 0, got {self.min!r}")
        check(
            math.isfinite(self.max) and self.max >= self.min,
            f"max: must be finite and >= min ({self.min!r}), got {self.max!r}",
        )

    @property
    def mean_s(self) -> float:
        """Mean wait in seconds."""
        return (self.min + self.max) / 2


@dataclass(frozen=True)
class Stage:
    """One stretch of the profile: Locust moves toward ``users`` and holds it."""

    duration: float
    """This stage's own length in seconds (> 0); stages follow one another."""
    users: int
    """Target number of concurrent users (>= 0)."""
    spawn_rate: float
    """Users started (or stopped) per second while moving toward the target (> 0)."""

    def __post_init__(self) -> None:
        check(
            math.isfinite(self.duration) and self.duration > 0,
            f"duration: must be a positive number of seconds, got {self.duration!r}",
        )
        check(self.users >= 0, f"users: must be >= 0, got {self.users!r}")
        check(
            math.isfinite(self.spawn_rate) and self.spawn_rate > 0,
            f"spawn_rate: must be a positive number of users per second, got {self.spawn_rate!r}",
        )


@dataclass(frozen=True)
class LoadProfile:
    """A named sequence of stages and the users' think time."""

    name: str
    """Short name (the shipped file's stem: ``low``, ``medium``, ...)."""
    description: str
    """One or two sentences on what the profile models."""
    wait_time: WaitTime
    """Think time between a user's requests."""
    stages: tuple[Stage, ...]
    """The stages in order; at least one. The test ends when the last one does."""
    source: str = dataclasses.field(default="", compare=False)
    """Resolved path of the file it was read from; empty when built in code (not compared)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        check(
            isinstance(self.name, str) and self.name != "",
            f"name: expected a non-empty string, got {self.name!r}",
        )
        check(
            isinstance(self.wait_time, WaitTime),
            f"wait_time: expected a WaitTime, got {self.wait_time!r}",
        )
        check(len(self.stages) > 0, "stages: expected at least one stage, got none")
        for i, stage in enumerate(self.stages):
            check(isinstance(stage, Stage), f"stages[{i}]: expected a Stage, got {stage!r}")

    @functools.cached_property
    def _stage_ends_s(self) -> tuple[float, ...]:
        return tuple(itertools.accumulate(s.duration for s in self.stages))

    @property
    def duration_s(self) -> float:
        """Total length in seconds (sum of the stage durations)."""
        return self._stage_ends_s[-1]

    def stage_at(self, t: float) -> Stage | None:
        """The stage running ``t`` seconds after the start; ``None`` at or after the end."""
        if t < 0:
            raise ValueError(f"t must be >= 0 seconds, got {t!r}")
        i = bisect.bisect_right(self._stage_ends_s, t)
        return self.stages[i] if i < len(self.stages) else None

    def tick(self, run_time: float) -> tuple[int, float] | None:
        """``(users, spawn_rate)`` at ``run_time`` seconds, or ``None`` to stop (Locust's shape contract)."""
        stage = self.stage_at(run_time)
        return None if stage is None else (stage.users, stage.spawn_rate)


def profile_dict(profile: LoadProfile) -> dict[str, Any]:
    """``profile`` as its YAML file states it (live backends hand Locust a file)."""
    return {
        "name": profile.name,
        "description": profile.description,
        "wait_time": {"min": profile.wait_time.min, "max": profile.wait_time.max},
        "stages": [
            {"duration": s.duration, "users": s.users, "spawn_rate": s.spawn_rate}
            for s in profile.stages
        ],
    }


def time_scaled(profile: LoadProfile, factor: float) -> LoadProfile:
    """``profile`` with every stage ``factor`` times as long (ramps ``1/factor`` as fast).

    For live runs that cannot take the profile's full length: the same shape of load in a
    fraction of the time. ``factor`` 1 returns the profile unchanged.
    """
    check(
        math.isfinite(factor) and factor > 0,
        f"time scale must be a positive number, got {factor!r}",
    )
    if factor == 1:
        return profile
    return dataclasses.replace(
        profile,
        name=f"{profile.name}x{factor:g}",
        stages=tuple(
            Stage(s.duration * factor, s.users, s.spawn_rate / factor) for s in profile.stages
        ),
        source="",
    )


# --------------------------------------------------------------------------- loading


def available_profiles() -> list[str]:
    """Names of the shipped training profiles, sorted."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def heldout_profiles() -> list[str]:
    """Names of the held-out profiles (``loadprofiles/heldout/*.yaml``), sorted."""
    return sorted(p.stem for p in HELDOUT_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | os.PathLike[str]) -> LoadProfile:
    """A profile by name (``"low"``, a held-out ``"slow_ramp"``), generator spec
    (``"random:seed=7"``) or path to a YAML file (a profile or a ``generator:`` file).

    Raises :class:`ConfigError` for an unknown name (with a "did you mean"), a malformed
    generator spec (naming the field, the value and what is allowed), an unreadable file
    or one whose content does not describe a profile (naming the file and the field).
    """
    if isinstance(name_or_path, str) and not _looks_like_path(name_or_path):
        from k8s_gpu_rl.loadprofiles import generator  # noqa: PLC0415 - it imports this module

        if generator.is_generator_spec(name_or_path):
            return generator.profile_from_spec(name_or_path)
        return _load_shipped(_shipped_path(name_or_path))
    path = Path(name_or_path).resolve()
    if path.parent in (PROFILES_DIR, HELDOUT_DIR) and path.suffix == ".yaml":
        return _load_shipped(path)
    return _parse_file(path)


def _shipped_path(name: str) -> Path:
    training, heldout = available_profiles(), heldout_profiles()
    if name in training:
        return PROFILES_DIR / f"{name}.yaml"
    if name in heldout:
        return HELDOUT_DIR / f"{name}.yaml"
    raise ConfigError(
        f"unknown load profile {name!r}{suggest(name, training + heldout)}; "
        f"available: {', '.join(training)}; held out: {', '.join(heldout)} "
        "(or random:seed=N for a generated one, or a path to a YAML file)"
    )


def parse_profile(data: Any, where: str = "profile", source: str = "") -> LoadProfile:
    """Build a :class:`LoadProfile` from a mapping as read from YAML; errors start with ``where``."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping with fields {', '.join(_FILE_FIELDS)}, got {data!r}"
        )
    if "generator" in data:
        from k8s_gpu_rl.loadprofiles import generator  # noqa: PLC0415 - it imports this module

        return generator.parse_generator_file(data, where, source)
    _check_keys(data, where)
    stages = data["stages"]
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{where}: stages: expected a non-empty list of stages, got {stages!r}")
    return _build_checked(
        lambda: LoadProfile(
            name=_string(data["name"], f"{where}: name"),
            description=_string(data.get("description", ""), f"{where}: description"),
            wait_time=_build(WaitTime, data["wait_time"], f"{where}: wait_time"),
            stages=tuple(_build(Stage, s, f"{where}: stages[{i}]") for i, s in enumerate(stages)),
            source=source,
        ),
        where,
    )


def _looks_like_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.endswith((".yaml", ".yml"))


def _parse_file(path: Path) -> LoadProfile:
    return parse_profile(read_yaml(path), where=str(path), source=str(path))


@functools.cache
def _load_shipped(path: Path) -> LoadProfile:
    """Shipped files do not change while a process runs; the result is immutable."""
    return _parse_file(path)


def _check_keys(data: Mapping[str, Any], where: str) -> None:
    for key in data:
        if key not in _FILE_FIELDS:
            raise ConfigError(
                f"{where}: unknown field {key!r}{suggest(str(key), (*_FILE_FIELDS, 'generator'))}"
                f"; allowed: {', '.join(_FILE_FIELDS)} (or generator: for a generated profile)"
            )
    for key in _REQUIRED_FILE_FIELDS:
        if key not in data:
            raise ConfigError(f"{where}: missing field {key!r}")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _build(cls: type[_T], data: Any, where: str) -> _T:
    """``from_dict`` that also names a missing field (after any unknown one)."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if isinstance(data, Mapping) and set(data) <= {f.name for f in fields}:
        for f in fields:  # unknown keys first (from_dict names them), then missing ones
            if f.default is dataclasses.MISSING and f.name not in data:
                raise ConfigError(f"{where}: missing field {f.name!r}")
    return _build_checked(lambda: from_dict(cls, data, where), where)


def _build_checked(make: Any, where: str) -> Any:
    """Call ``make``; prefix with ``where`` a ``ConfigError`` that does not name it yet."""
    try:
        return make()
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- user counts


def user_events(profile: LoadProfile) -> tuple[np.ndarray, np.ndarray]:
    """The user count over time as change events ``(times, counts)``.

    ``times`` (float64 seconds from the start, non-decreasing) and ``counts`` (int64, the
    count right after that time). The count starts at 0. At each stage start the runner
    moves it toward the stage's target at ``spawn_rate`` users/s, up or down, in Locust's
    batches of ``max(1, floor(spawn_rate))`` users: the first at the stage start, then one
    every ``batch / spawn_rate`` s. A stage that
    ends before its target is reached leaves the next stage to continue from where the
    count is. Consecutive stages with the same ``(users, spawn_rate)`` act as one, since
    Locust only restarts a ramp when the shape's tick changes. The last event sets 0 at
    ``profile.duration_s``. The arrays are fresh copies the caller may modify.
    """
    times, counts = _user_events_cached(profile)
    return times.copy(), counts.copy()


@overload
def users_at(profile: LoadProfile, t: float) -> int: ...
@overload
def users_at(profile: LoadProfile, t: np.ndarray) -> np.ndarray: ...
def users_at(profile: LoadProfile, t: float | np.ndarray) -> int | np.ndarray:
    """The user count at ``t`` seconds (a number, or an array of times) per :func:`user_events`."""
    times, counts = _user_events_cached(profile)
    idx = np.searchsorted(times, t, side="right") - 1
    values = np.where(idx >= 0, counts[np.maximum(idx, 0)], 0)
    return int(values) if np.ndim(t) == 0 else values


@functools.lru_cache(maxsize=64)
def _user_events_cached(profile: LoadProfile) -> tuple[np.ndarray, np.ndarray]:
    times_parts: list[np.ndarray] = []
    count_parts: list[np.ndarray] = []
    count = 0
    for start_s, stage in _merged_stages(profile):
        times, counts = _ramp(start_s, stage, count)
        times_parts.append(times)
        count_parts.append(counts)
        if counts.size:
            count = int(counts[-1])
    times_parts.append(np.array([profile.duration_s], dtype=np.float64))
    count_parts.append(np.zeros(1, dtype=np.int64))
    times_all, counts_all = np.concatenate(times_parts), np.concatenate(count_parts)
    times_all.flags.writeable = False
    counts_all.flags.writeable = False
    return times_all, counts_all


def _merged_stages(profile: LoadProfile) -> Iterator[tuple[float, Stage]]:
    """``(start_s, stage)`` with consecutive equal-target stages joined into one."""
    start_s = 0.0
    for _, group in itertools.groupby(profile.stages, key=lambda s: (s.users, s.spawn_rate)):
        stages = list(group)
        duration = math.fsum(s.duration for s in stages)
        yield start_s, dataclasses.replace(stages[0], duration=duration)
        start_s += duration


def _ramp(start_s: float, stage: Stage, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The changes within one stage that starts at ``start_s`` with ``count`` users.

    As Locust's runner dispatches users: in batches of ``max(1, floor(spawn_rate))``
    every ``batch / spawn_rate`` seconds, the first batch at the stage start, the last one
    partial.
    """
    delta = stage.users - count
    batch = max(1, math.floor(stage.spawn_rate))
    period_s = batch / stage.spawn_rate
    steps_in_stage = max(0, math.ceil(stage.duration / period_s - 1e-9))
    n = min(math.ceil(abs(delta) / batch), steps_in_stage)
    k = np.arange(n, dtype=np.int64)
    times = start_s + k * period_s
    moved = np.minimum((k + 1) * batch, abs(delta))
    counts = count + np.sign(delta) * moved
    return times.astype(np.float64), counts.astype(np.int64)
