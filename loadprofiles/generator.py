"""Seeded generator of load profiles, for testing policies on loads they never saw.

A :class:`GeneratorSpec` says what kind of load to draw; :func:`generate_profile` turns it
into an ordinary :class:`~k8s_gpu_rl.loadprofiles.profile.LoadProfile` (stages of
``step_s`` seconds, then equal neighbours merged), so everything that takes a profile
takes a generated one. The same spec always gives the same profile: every draw comes from
one ``np.random.default_rng(seed)``, in a fixed order.

Wherever a profile is asked for, ``random:seed=7`` (more keys after commas or colons:
``random:seed=7,duration_s=1800,shape=diurnal``) or a YAML file with a ``generator:``
mapping of these fields (and optional top-level ``name`` and ``description``) generates
one. Shapes, in the load's normalised level ``y`` in [0, 1] (users = ``min_users + y *
(max_users - min_users)``, rounded):

| shape | what is drawn (uniform unless said) |
|---|---|
| ``steps`` | a level in [0, 1] held for [120, 300] s, again and again; each change at [0.5, 10] users/s |
| ``ramps`` | 3-6 knots at random times, levels in [0, 1], joined by straight ramps |
| ``bursts`` | a base in [0.05, 0.4]; 1-4 flash crowds to [0.6, 1.0] for [30, 180] s, each rising at [10, 50] users/s |
| ``diurnal`` | a day's cosine from a low in [0, 0.3] to a high in [0.7, 1.0], [1, 3] cycles, random phase |
| ``mix`` | a ``diurnal`` curve scaled into [0, 0.6] with ``bursts``' flash crowds on top |
| ``any`` | one of the above, drawn first |

Then multiplicative noise ``y * (1 + noise * N(0, 1))`` per step, clipped to [0, 1]. A
smooth change spreads over its step (spawn rate ``|change| / step_s``, at least 0.5
users/s); the first stage reaches its count within 10 s. Unset fields are drawn: the
duration in [``min_duration_s``, ``max_duration_s``] (default 600-1800 s, like the training
profiles), rounded to whole steps; ``noise`` in [0, 0.15]; the think time's minimum in
[0.3, 0.6] s and its width in [0.4, 0.8] s (the training profiles use 0.4-1.0 s). Every
stage's users lie in [``min_users``, ``max_users``] and its spawn rate in [0.5, 50]
users/s.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import yaml

from k8s_gpu_rl.config import check, from_dict, suggest
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.loadprofiles import shapes
from k8s_gpu_rl.loadprofiles.profile import LoadProfile, Stage, WaitTime

PREFIX = "random"
"""A profile name of ``random`` or ``random:key=value,...`` is a generator spec."""
SHAPES = tuple(shapes.SHAPES)
"""The shapes a generator can draw (``any``: one of these, drawn)."""
SPAWN_RATE_RANGE = (0.5, 50.0)
"""Every generated stage's spawn rate lies in this range (users/s)."""
NOISE_RANGE = (0.0, 0.15)
WAIT_MIN_RANGE_S = (0.3, 0.6)
WAIT_WIDTH_RANGE_S = (0.4, 0.8)
FIRST_RAMP_S = 10.0
"""The first stage reaches its user count within this many seconds."""
FILE_FIELDS = ("name", "description", "generator")


@dataclass(frozen=True)
class GeneratorSpec:
    """What kind of load profile to draw; unset (None) values are drawn too."""

    seed: int
    """Seed of the generator's only random source (>= 0); the same spec, the same profile."""
    shape: Literal["any", "steps", "ramps", "bursts", "diurnal", "mix"] = "any"
    """Shape family (see the module docstring); ``any`` draws one."""
    duration_s: float | None = None
    """Total length in seconds (60-86400); None: drawn in [min_duration_s, max_duration_s]."""
    min_duration_s: float = 600.0
    """Shortest drawn duration in seconds (60-86400)."""
    max_duration_s: float = 1800.0
    """Longest drawn duration in seconds (>= min_duration_s, <= 86400)."""
    min_users: int = 5
    """Fewest concurrent users of any stage (>= 0)."""
    max_users: int = 150
    """Most concurrent users of any stage (>= min_users, >= 1, <= 10000). The default is
    the training profile ``mixed``'s peak, which one RTX 3080 serves at some share."""
    step_s: float = 15.0
    """Length of one stage before merging, in seconds (1-600)."""
    noise: float | None = None
    """Relative standard deviation of the per-step noise (0-1); None: drawn in [0, 0.15]."""
    wait_min_s: float | None = None
    """Users' shortest think time in seconds (>= 0); None: drawn. Give both or neither."""
    wait_max_s: float | None = None
    """Users' longest think time in seconds (>= wait_min_s); None: drawn."""

    def __post_init__(self) -> None:
        check(
            _is_int(self.seed) and self.seed >= 0,
            f"seed: must be an integer >= 0, got {self.seed!r}",
        )
        allowed = ("any", *SHAPES)
        check(
            self.shape in allowed,
            f"shape: {self.shape!r} is not allowed{suggest(self.shape, allowed)}; "
            f"allowed: {', '.join(allowed)}",
        )
        for name in ("duration_s", "min_duration_s", "max_duration_s"):
            value = getattr(self, name)
            check(
                value is None or 60 <= value <= 86400,
                f"{name}: must be between 60 and 86400 seconds, got {value!r}",
            )
        check(
            self.max_duration_s >= self.min_duration_s,
            f"max_duration_s: must be >= min_duration_s ({self.min_duration_s!r}), "
            f"got {self.max_duration_s!r}",
        )
        self._check_users_and_steps()
        self._check_noise_and_wait()

    def _check_users_and_steps(self) -> None:
        check(
            _is_int(self.min_users) and self.min_users >= 0,
            f"min_users: must be an integer >= 0, got {self.min_users!r}",
        )
        check(
            _is_int(self.max_users) and max(1, self.min_users) <= self.max_users <= 10000,
            f"max_users: must be between max(1, min_users) ({max(1, self.min_users)}) and "
            f"10000, got {self.max_users!r}",
        )
        check(1 <= self.step_s <= 600, f"step_s: must be between 1 and 600 s, got {self.step_s!r}")

    def _check_noise_and_wait(self) -> None:
        check(
            self.noise is None or 0 <= self.noise <= 1,
            f"noise: must be between 0 and 1, got {self.noise!r}",
        )
        check(
            (self.wait_min_s is None) == (self.wait_max_s is None),
            f"wait_min_s, wait_max_s: give both or neither, got {self.wait_min_s!r}, "
            f"{self.wait_max_s!r}",
        )
        if self.wait_min_s is not None and self.wait_max_s is not None:
            check(
                math.isfinite(self.wait_min_s) and self.wait_min_s >= 0,
                f"wait_min_s: must be >= 0 seconds, got {self.wait_min_s!r}",
            )
            check(
                math.isfinite(self.wait_max_s) and self.wait_max_s >= self.wait_min_s,
                f"wait_max_s: must be >= wait_min_s ({self.wait_min_s!r}), got {self.wait_max_s!r}",
            )

    @property
    def label(self) -> str:
        """File-safe name: ``random-seed_7`` plus every field that differs from its default."""
        parts = [f"{k}_{v:g}" if isinstance(v, float) else f"{k}_{v}" for k, v in self._set()]
        return "-".join([PREFIX, *parts])

    @property
    def text(self) -> str:
        """The spec as ``random:seed=7,...`` (the fields that differ from their defaults)."""
        return f"{PREFIX}:" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in self._set())  # fmt: skip

    def _set(self) -> list[tuple[str, Any]]:
        out = [("seed", self.seed)]
        for f in dataclasses.fields(self)[1:]:
            if getattr(self, f.name) != f.default:
                out.append((f.name, getattr(self, f.name)))
        return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


# --------------------------------------------------------------------------- parsing


def is_generator_spec(name: str) -> bool:
    """True for ``random`` and ``random:...`` (profile names that :func:`parse_spec` reads)."""
    return name == PREFIX or name.startswith(PREFIX + ":")


def parse_spec(text: str) -> GeneratorSpec:
    """``random:seed=7,shape=diurnal`` as a :class:`GeneratorSpec` (``,`` or ``:`` between keys).

    Raises :class:`ConfigError` naming the spec, the field, the value and what is allowed.
    """
    where = f"load profile {text!r}"
    body = text[len(PREFIX) + 1 :] if text.startswith(PREFIX + ":") else ""
    items = [p.strip() for p in body.replace(":", ",").split(",") if p.strip()]
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where}: expected key=value, got {item!r}; keys: {_keys()}")
        if key.strip() in values:
            raise ConfigError(f"{where}: {key.strip()!r} given twice")
        values[key.strip()] = _scalar(raw.strip())
    return _spec(values, where)


def parse_generator_file(data: Mapping[str, Any], where: str, source: str = "") -> LoadProfile:
    """A profile file whose ``generator:`` mapping holds :class:`GeneratorSpec` fields."""
    for key in data:
        if key not in FILE_FIELDS:
            raise ConfigError(
                f"{where}: unknown field {key!r}{suggest(str(key), FILE_FIELDS)}; a generator "
                f"file allows: {', '.join(FILE_FIELDS)}"
            )
    spec = _spec(data["generator"], f"{where}: generator")
    profile = generate_profile(spec)
    for key in ("name", "description"):
        if key in data and (not isinstance(data[key], str) or data[key] == ""):
            raise ConfigError(f"{where}: {key}: expected a non-empty string, got {data[key]!r}")
    return dataclasses.replace(
        profile,
        name=data.get("name", profile.name),
        description=data.get("description", profile.description),
        source=source,
    )


def _spec(values: Any, where: str) -> GeneratorSpec:
    if isinstance(values, Mapping) and "seed" not in values:
        raise ConfigError(f"{where}: missing field 'seed' (an integer >= 0); keys: {_keys()}")
    try:
        return from_dict(GeneratorSpec, values, "generator")
    except ConfigError as exc:
        message = str(exc).removeprefix("generator: ").removeprefix("generator.")
        raise ConfigError(f"{where}: {message}") from None


def _keys() -> str:
    return ", ".join(f.name for f in dataclasses.fields(GeneratorSpec))


def _scalar(raw: str) -> Any:
    """``7`` -> 7, ``0.1`` -> 0.1, ``diurnal`` -> "diurnal" (YAML's scalar rules)."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, int | float | str | bool) or value is None else raw


# --------------------------------------------------------------------------- generation


@functools.lru_cache(maxsize=256)
def generate_profile(spec: GeneratorSpec) -> LoadProfile:
    """The profile ``spec`` describes (cached: the result is immutable)."""
    rng = np.random.default_rng(spec.seed)
    shape = spec.shape if spec.shape != "any" else str(rng.choice(SHAPES))
    duration_s = spec.duration_s or _drawn_duration(spec, rng)
    n = max(1, math.ceil(duration_s / spec.step_s - 1e-9))
    level, rates = shapes.SHAPES[shape](n, spec.step_s, rng)
    noise = spec.noise if spec.noise is not None else float(rng.uniform(*NOISE_RANGE))
    level = np.clip(level * (1 + noise * rng.standard_normal(n)), 0.0, 1.0)
    wait = _wait_time(spec, rng)
    users = np.rint(spec.min_users + level * (spec.max_users - spec.min_users)).astype(int)
    stages = _stages(users, rates, duration_s, spec.step_s)
    description = (
        f"Generated by {spec.text}: shape {shape}, {duration_s:g} s, {users.min()}-"
        f"{users.max()} users, think time {wait.min:.2f}-{wait.max:.2f} s, noise {noise:.3f}."
    )
    return LoadProfile(spec.label, description, wait, stages)


@functools.cache
def profile_from_spec(text: str) -> LoadProfile:
    """:func:`generate_profile` of :func:`parse_spec` (what ``load_profile("random:...")`` does)."""
    return generate_profile(parse_spec(text))


def _drawn_duration(spec: GeneratorSpec, rng: np.random.Generator) -> float:
    """Uniform in [min_duration_s, max_duration_s], rounded to whole steps inside it."""
    drawn = rng.uniform(spec.min_duration_s, spec.max_duration_s)
    low = math.ceil(spec.min_duration_s / spec.step_s - 1e-9)
    high = math.floor(spec.max_duration_s / spec.step_s + 1e-9)
    if high < low:  # no whole number of steps fits: the shortest duration
        return spec.min_duration_s
    return float(min(max(round(drawn / spec.step_s), low), high) * spec.step_s)


def _wait_time(spec: GeneratorSpec, rng: np.random.Generator) -> WaitTime:
    if spec.wait_min_s is not None and spec.wait_max_s is not None:
        return WaitTime(spec.wait_min_s, spec.wait_max_s)
    low = round(float(rng.uniform(*WAIT_MIN_RANGE_S)), 2)
    return WaitTime(low, round(low + float(rng.uniform(*WAIT_WIDTH_RANGE_S)), 2))


def _stages(
    users: np.ndarray, rates: np.ndarray, duration_s: float, step_s: float
) -> tuple[Stage, ...]:
    """One stage per step (the last one shorter if needed), equal neighbours merged.

    ``rates[k]`` is the spawn rate of step k's change, or NaN for a smooth change (spread
    over the step, at least 0.5 users/s); a step that does not change keeps the rate of
    the step before, so Locust sees one stage.
    """
    out: list[Stage] = []
    previous, rate = 0, max(SPAWN_RATE_RANGE[0], users[0] / FIRST_RAMP_S)
    for k, count in enumerate(users.tolist()):
        length = min(step_s, duration_s - k * step_s)
        if k > 0 and count != previous:
            rate = rates[k] if np.isfinite(rates[k]) else abs(count - previous) / step_s
        rate = math.ceil(min(max(rate, SPAWN_RATE_RANGE[0]), SPAWN_RATE_RANGE[1]) * 100) / 100
        if out and (out[-1].users, out[-1].spawn_rate) == (count, rate):
            out[-1] = dataclasses.replace(out[-1], duration=out[-1].duration + length)
        else:
            out.append(Stage(length, int(count), rate))
        previous = count
    return tuple(out)
