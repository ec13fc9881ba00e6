"""Load profiles: shipped files, YAML validation, Locust's user-count semantics, tick()."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.loadprofiles import (
    PROFILES_DIR,
    LoadProfile,
    Stage,
    WaitTime,
    available_profiles,
    load_profile,
    user_events,
    users_at,
)
from k8s_gpu_rl.loadprofiles.kserve_v2 import HEADER_LENGTH, build_infer_request, random_input

REPO_ROOT = Path(__file__).resolve().parents[1]
WAIT = WaitTime(min=0.4, max=1.0)


def make_profile(*stages: tuple[float, int, float]) -> LoadProfile:
    """A profile from ``(duration, users, spawn_rate)`` triples."""
    return LoadProfile(
        name="test",
        description="hand-made",
        wait_time=WAIT,
        stages=tuple(Stage(duration=d, users=u, spawn_rate=r) for d, u, r in stages),
    )


def events_list(profile: LoadProfile) -> list[tuple[float, int]]:
    times, counts = user_events(profile)
    return [(round(float(t), 9), int(c)) for t, c in zip(times, counts, strict=True)]


# --------------------------------------------------------------------------- shipped profiles


def test_available_profiles_are_the_shipped_files() -> None:
    assert available_profiles() == ["high", "low", "medium", "mixed"]


@pytest.mark.parametrize(("name", "users"), [("low", 10), ("medium", 50), ("high", 100)])
def test_constant_profiles_have_their_level_for_ten_minutes(name: str, users: int) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.duration_s == 600
    assert {s.users for s in profile.stages} == {users}
    assert profile.wait_time == WAIT
    assert users_at(profile, 0.0) >= 1  # the ramp starts at once
    assert users_at(profile, 5.0) == users  # ... and is short
    assert users_at(profile, 599.0) == users
    assert users_at(profile, 600.0) == 0


def test_mixed_crosses_all_levels_with_a_burst() -> None:
    profile = load_profile("mixed")
    assert 25 * 60 <= profile.duration_s <= 35 * 60
    assert profile.wait_time == WAIT
    counts = users_at(profile, np.arange(0.0, profile.duration_s, 1.0))
    for level in (10, 50, 100):
        assert level in set(counts.tolist())
    assert counts.max() > 100  # a burst above the high level
    peak = int(np.argmax(counts))
    assert counts[peak:].min() <= 10  # and back down to the low level afterwards
    assert len(profile.stages) >= 5


def test_name_and_path_give_equal_profiles(tmp_path: Path) -> None:
    by_name = load_profile("mixed")
    assert load_profile(PROFILES_DIR / "mixed.yaml") == by_name
    assert load_profile(str(PROFILES_DIR / "mixed.yaml")) == by_name
    copy = tmp_path / "mixed.yaml"
    copy.write_text((PROFILES_DIR / "mixed.yaml").read_text())
    assert load_profile(copy) == by_name  # the source path is not compared
    assert load_profile(copy).source == str(copy.resolve())
    assert by_name.source == str(PROFILES_DIR / "mixed.yaml")


def test_shipped_profiles_are_cached_and_immutable() -> None:
    profile = load_profile("low")
    assert load_profile("low") is profile
    assert isinstance(profile.stages, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'name'"):
        profile.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'users'"):
        profile.stages[0].users = 1  # type: ignore[misc]


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile("meduim")
    message = str(info.value)
    assert "'meduim'" in message
    assert "did you mean 'medium'" in message
    assert "high, low, medium, mixed" in message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_profile(tmp_path / "nowhere.yaml")


# --------------------------------------------------------------------------- malformed files

HEAD = "name: bad\ndescription: x\nwait_time: {min: 0.4, max: 1.0}\n"
GOOD = ["{duration: 60, users: 10, spawn_rate: 5}"] * 3


def doc(*stages: str, head: str = HEAD) -> str:
    """A profile file with ``head`` and the given stage mappings (flow style)."""
    return head + "stages:\n" + "".join(f"  - {s}\n" for s in stages)


MALFORMED = [
    ("users-not-int", doc(*GOOD[:2], "{duration: 60, users: ten, spawn_rate: 5}"),
     ["stages[2].users", "expected an integer", "'ten'"]),
    ("users-float", doc("{duration: 60, users: 10.5, spawn_rate: 5}"),
     ["stages[0].users", "expected an integer", "10.5"]),
    ("rate-not-number", doc("{duration: 60, users: 10, spawn_rate: fast}"),
     ["stages[0].spawn_rate", "expected a number", "'fast'"]),
    ("no-stages", HEAD, ["missing field 'stages'"]),
    ("empty-stages", HEAD + "stages: []\n", ["stages", "non-empty list"]),
    ("stages-not-list", HEAD + "stages: {duration: 60}\n", ["stages", "non-empty list"]),
    ("negative-duration", doc(GOOD[0], "{duration: -5, users: 20, spawn_rate: 5}"),
     ["stages[1]", "duration", "-5"]),
    ("zero-rate", doc("{duration: 60, users: 10, spawn_rate: 0}"),
     ["stages[0]", "spawn_rate", "positive"]),
    ("unknown-stage-key", doc(GOOD[0], "{duration: 60, user: 20, spawn_rate: 5}"),
     ["stages[1]", "unknown field 'user'", "did you mean 'users'"]),
    ("missing-stage-key", doc(GOOD[0], "{users: 20, spawn_rate: 5}"),
     ["stages[1]", "missing field 'duration'"]),
    ("stage-not-mapping", doc(GOOD[0], "[60, 20, 5]"), ["stages[1]", "expected a mapping"]),
    ("unknown-key", doc(*GOOD).replace("stages:", "stagse:"),
     ["unknown field 'stagse'", "did you mean 'stages'"]),
    ("wait-min-above-max", doc(*GOOD, head=HEAD.replace("min: 0.4", "min: 2")),
     ["wait_time", "max", "1.0"]),
    ("wait-not-mapping", doc(*GOOD, head=HEAD.replace("{min: 0.4, max: 1.0}", "0.7")),
     ["wait_time", "expected a mapping"]),
    ("name-not-string", doc(*GOOD, head=HEAD.replace("name: bad", "name: [1, 2]")),
     ["name", "expected a string"]),
    ("bad-yaml", HEAD + "stages: [\n", ["not valid YAML"]),
    ("not-a-mapping", "- 1\n- 2\n", ["expected a mapping"]),
    ("empty-file", "", ["expected a mapping"]),
    # generator files (``generator:`` instead of ``stages:``: loadprofiles/generator.py)
    ("generator-bad-shape", "generator:\n  seed: 1\n  shape: wavy\n",
     ["generator: shape: 'wavy' is not allowed",
      "'any', 'steps', 'ramps', 'bursts', 'diurnal', 'mix'"]),
    ("generator-no-seed", "generator:\n  shape: diurnal\n", ["generator: missing field 'seed'"]),
    ("generator-not-mapping", "generator: 7\n",
     ["generator: expected a mapping of GeneratorSpec fields, got 7"]),
    ("generator-and-stages", "generator: {seed: 1}\nstages: []\n",
     ["unknown field 'stages'; a generator file allows: name, description, generator"]),
    ("generator-bad-name", "generator: {seed: 1}\nname: [1]\n",
     ["name: expected a non-empty string, got [1]"]),
    ("generator-misspelt", "name: x\nwait_time: {min: 1, max: 2}\ngeneratr: {seed: 1}\nstages: []\n",
     ["unknown field 'generatr' (did you mean 'generator'?)"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "fragments"), [pytest.param(t, f, id=i) for i, t, f in MALFORMED])
def test_malformed_file_names_file_and_field(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message


def test_error_message_format_matches_the_documented_one(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(doc(*GOOD, "{duration: 60, users: ten, spawn_rate: 5}"))
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert str(info.value) == f"{path}: stages[3].users: expected an integer, got 'ten'"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Stage(duration=0, users=1, spawn_rate=1),
            "duration: must be a positive number of seconds, got 0",
        ),
        (lambda: Stage(duration=1, users=-1, spawn_rate=1), "users: must be >= 0, got -1"),
        (
            lambda: Stage(duration=1, users=1, spawn_rate=float("inf")),
            "spawn_rate: must be a positive number of users per second, got inf",
        ),
        (lambda: WaitTime(min=-0.1, max=1), "min: must be >= 0, got -0.1"),
        (
            lambda: LoadProfile(name="x", description="", wait_time=WAIT, stages=()),
            "stages: expected at least one stage, got none",
        ),
        (
            lambda: LoadProfile(name="", description="", wait_time=WAIT, stages=(Stage(1, 1, 1),)),
            "name: expected a non-empty string, got ''",
        ),
    ],
)
def test_bad_values_in_code_raise_config_error(make: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()  # type: ignore[operator]
    assert str(info.value) == message


# --------------------------------------------------------------------------- user_events


def test_ramp_up_in_locust_batches_then_zero_at_end() -> None:
    # spawn_rate 2: batches of 2 users every second (Locust's dispatcher), the first at once
    profile = make_profile((10, 4, 2))
    assert events_list(profile) == [(0.0, 2), (1.0, 4), (10.0, 0)]
    # a rate below 1 user/s moves one user every 1 / rate seconds
    assert events_list(make_profile((10, 3, 0.5))) == [(0.0, 1), (2.0, 2), (4.0, 3), (10.0, 0)]
    # a last partial batch: 5 users at 2/s
    assert events_list(make_profile((10, 5, 2))) == [(0.0, 2), (1.0, 4), (2.0, 5), (10.0, 0)]


def test_ramp_down_at_the_new_stage_rate() -> None:
    profile = make_profile((5, 3, 10), (5, 0, 1))
    assert events_list(profile) == [
        (0.0, 3),
        (5.0, 2), (6.0, 1), (7.0, 0),
        (10.0, 0),
    ]  # fmt: skip


def test_stage_cut_short_leaves_next_stage_to_continue() -> None:
    # 2 s at 1 user/s toward 10 reaches only 2; the next stage ramps down from there
    profile = make_profile((2, 10, 1), (5, 0, 2))
    assert events_list(profile) == [(0.0, 1), (1.0, 2), (2.0, 0), (7.0, 0)]
    # ... and a stage that ramps further up continues from 2, not from 0
    profile = make_profile((2, 10, 1), (3, 4, 10))
    assert events_list(profile) == [(0.0, 1), (1.0, 2), (2.0, 4), (5.0, 0)]


def test_no_change_exactly_at_the_stage_end() -> None:
    # 2 s at 10 users/s: batches at 0 and 1 s only (2 s is the next stage's start)
    profile = make_profile((2.0, 100, 10), (1.0, 3, 1))
    assert events_list(profile) == [(0.0, 10), (1.0, 20), (2.0, 19), (3.0, 0)]


def test_equal_consecutive_stages_act_as_one() -> None:
    split = make_profile((1.5, 5, 2), (1.5, 5, 2))
    whole = make_profile((3.0, 5, 2))
    assert events_list(split) == events_list(whole)
    assert events_list(whole) == [(0.0, 2), (1.0, 4), (2.0, 5), (3.0, 0)]


def test_events_are_typed_sorted_copies() -> None:
    profile = load_profile("mixed")
    times, counts = user_events(profile)
    assert times.dtype == np.float64 and counts.dtype == np.int64
    assert np.all(np.diff(times) >= 0)
    steps = np.abs(np.diff(np.concatenate([[0], counts[:-1]])))
    assert steps.min() >= 1 and steps.max() <= 30  # batches of at most floor(spawn_rate)
    assert (times[-1], counts[-1]) == (profile.duration_s, 0)
    times[:] = -1.0
    counts[:] = 7
    again_t, again_c = user_events(profile)
    assert again_t[0] == 0.0 and again_c[0] == 5


def test_users_at_scalar_and_array() -> None:
    profile = make_profile((10, 4, 2))
    assert users_at(profile, 0.0) == 2
    assert users_at(profile, 0.99) == 2
    assert users_at(profile, 1.0) == 4
    assert users_at(profile, 9.99) == 4
    assert users_at(profile, 10.0) == 0
    assert users_at(profile, -1.0) == 0
    assert isinstance(users_at(profile, 3.0), int)
    grid = users_at(profile, np.array([-1.0, 0.0, 1.2, 20.0]))
    assert grid.tolist() == [0, 2, 4, 0]


# --------------------------------------------------------------------------- tick / stage_at


def test_tick_follows_stages_and_stops_at_the_end() -> None:
    profile = make_profile((5, 3, 10), (5, 8, 2))
    assert profile.duration_s == 10
    assert profile.tick(0.0) == (3, 10.0)
    assert profile.tick(4.99) == (3, 10.0)
    assert profile.tick(5.0) == (8, 2.0)
    assert profile.tick(9.99) == (8, 2.0)
    assert profile.tick(10.0) is None
    assert profile.tick(1e6) is None
    assert profile.stage_at(7.0) == Stage(duration=5, users=8, spawn_rate=2)
    with pytest.raises(ValueError, match=r"t must be >= 0 seconds, got -1\.0"):
        profile.stage_at(-1.0)


# --------------------------------------------------------------------------- imports, requests


def test_package_imports_neither_locust_nor_gevent() -> None:
    code = (
        "import sys, loadprofiles, k8s_gpu_rl.loadprofiles.kserve_v2;"
        "loadprofiles.user_events(loadprofiles.load_profile('mixed'));"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)


def test_infer_request_uses_the_binary_extension() -> None:
    tensor = random_input(seed=0)
    request = build_infer_request("mobilenetv4", "input0", "output0", tensor)
    assert request.path == "/v2/models/mobilenetv4/infer"
    assert request.headers[HEADER_LENGTH] == str(request.json_length)
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert len(request.body) == request.json_length + 602112
    header = json.loads(request.body[: request.json_length])
    assert header["inputs"] == [
        {
            "name": "input0",
            "shape": [1, 3, 224, 224],
            "datatype": "FP32",
            "parameters": {"binary_data_size": 602112},
        }
    ]
    assert header["outputs"] == [{"name": "output0", "parameters": {"binary_data": True}}]
    raw = np.frombuffer(request.body[request.json_length :], dtype="<f4").reshape(1, 3, 224, 224)
    assert np.array_equal(raw, tensor)
    assert np.array_equal(random_input(seed=0), tensor)
    assert not np.array_equal(random_input(seed=1), tensor)


@pytest.mark.parametrize("name", ["low", "medium", "high", "mixed"])
def test_profile_dict_round_trips_through_the_parser(name: str) -> None:
    from k8s_gpu_rl.loadprofiles.profile import parse_profile, profile_dict

    profile = load_profile(name)
    assert parse_profile(profile_dict(profile)) == profile


def test_time_scaled_keeps_the_shape_in_a_fraction_of_the_time() -> None:
    from k8s_gpu_rl.loadprofiles import time_scaled, users_at

    mixed = load_profile("mixed")
    short = time_scaled(mixed, 0.1)
    assert short.duration_s == pytest.approx(0.1 * mixed.duration_s)
    assert [s.users for s in short.stages] == [s.users for s in mixed.stages]
    # between ramps, the user count at 10 % of a time is the original's at that time
    for t in (100.0, 400.0, 600.0, 750.0, 900.0, 1150.0, 1400.0, 1790.0):
        assert users_at(short, 0.1 * t) == users_at(mixed, t)
    assert time_scaled(mixed, 1) is mixed
    with pytest.raises(ConfigError, match="time scale"):
        time_scaled(mixed, 0)
