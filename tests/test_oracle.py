"""The QoS-matched oracle: its DP against enumeration, its search against brute force."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

from k8s_gpu_rl.baselines.grids import reachable_capacity
from k8s_gpu_rl.baselines.oracle import OraclePolicy
from k8s_gpu_rl.baselines.oracle_search import Schedule, Tables, dp_schedule, simulate
from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.evaluation.rollout import run_episode
from k8s_gpu_rl.loadprofiles import parse_profile

# --- the surrogate DP against enumerating every schedule ------------------------------


def _objective(plan, t: Tables, lam, budget, lead, dt, start):
    """sum_k share n_k dt + lam (v[k, ready_k] - budget q[k, ready_k]), written out."""
    history = [start] * max(lead, 1) + list(plan)
    total = 0.0
    for k, n in enumerate(plan):
        window = history[k + max(lead, 1) - lead : k + max(lead, 1) + 1]
        ready = min(window)
        total += t.share / 100.0 * n * dt + lam * (t.v[k, ready - 1] - budget * t.q[k, ready - 1])
    return total


def _ramp_ok(plan, start, max_step=2):
    prev = [start, *plan[:-1]]
    return all(abs(a - b) <= max_step for a, b in zip(plan, prev, strict=True))


@pytest.mark.parametrize("lead", [0, 1, 2])
@pytest.mark.parametrize("lam", [0.0, 0.5, 40.0])
def test_dp_is_the_minimum_over_every_schedule(lead, lam) -> None:
    rng = np.random.default_rng(3)
    steps, room = 5, 4
    v = rng.integers(0, 30, size=(steps, room)).astype(float)
    v = np.sort(v, axis=1)[:, ::-1]  # more pods, fewer violations
    t = Tables(share=30, v=v, q=np.full((steps, room), 100.0))
    plan, _, _ = dp_schedule(t, lam, 0.01, lead, 15.0, start=1)
    best = min(
        _objective(p, t, lam, 0.01, lead, 15.0, 1)
        for p in itertools.product(range(1, room + 1), repeat=steps)
        if _ramp_ok(p, 1)
    )
    assert _ramp_ok(plan, 1)
    assert _objective(plan, t, lam, 0.01, lead, 15.0, 1) == pytest.approx(best)


def test_dp_reports_the_cost_and_excess_of_its_plan() -> None:
    # 2 steps, 2 replica counts; one pod violates 10 of 100 requests at step 1.
    t = Tables(share=50, v=np.array([[0.0, 0.0], [10.0, 0.0]]), q=np.full((2, 2), 100.0))
    # lam 0: cost only -> one pod throughout, 2 x 0.5 x 15 = 15 vGPU-s, excess 10 - 0.01 x 200 = 8
    assert dp_schedule(t, 0.0, 0.01, 0, 15.0) == ((1, 1), 15.0, pytest.approx(8.0))
    # lam 10: a second pod at step 1 costs 7.5 vGPU-s and saves 10 x 10 = 100 -> (1, 2)
    assert dp_schedule(t, 10.0, 0.01, 0, 15.0)[0] == (1, 2)
    # with a lead of one step the second pod must already be asked for at step 0
    assert dp_schedule(t, 10.0, 0.01, 1, 15.0)[0] == (2, 2)


# --- the oracle against brute force on a tiny profile ---------------------------------

TINY = parse_profile(
    {
        "name": "tiny",
        "wait_time": {"min": 0.4, "max": 1.0},
        "stages": [
            {"duration": 30, "users": 40, "spawn_rate": 40},
            {"duration": 45, "users": 450, "spawn_rate": 100},
            {"duration": 45, "users": 40, "spawn_rate": 100},
        ],
    }
)
"""Two minutes (8 steps): a 45 s surge that one pod at 50 % cannot serve."""
BUDGET = 0.05


def _env() -> K8sGpuEnv:
    """Pods of 50 %, at most 2: 2^8 = 256 schedules to enumerate."""
    return K8sGpuEnv(
        profile=TINY,
        config={"max_replicas": 2, "share_levels": (50,), "reward": {"qos_budget": BUDGET}},
    )


def test_oracle_finds_the_brute_force_optimum_on_a_tiny_profile() -> None:
    env = _env()
    env.reset(seed=11)
    env0 = copy.deepcopy(env)
    steps = env0.max_steps
    outcomes = {}
    for share, room in reachable_capacity(env0).items():
        for plan in itertools.product(range(1, room + 1), repeat=steps):
            outcomes[(share, plan)] = simulate(env0, Schedule(share, plan))
    within = {k: o for k, o in outcomes.items() if o.violation_rate <= BUDGET}
    assert within, "the tiny instance must have a feasible schedule"
    assert len(within) < len(outcomes), "and the budget must bind"
    best = min(o.vgpu_hours for o in within.values())

    oracle = OraclePolicy().bind(env)
    kpis = run_episode(env, oracle, seed=11).kpis
    assert kpis["qos_violation_rate"] <= BUDGET
    assert kpis["vgpu_hours"] == pytest.approx(best, rel=1e-9)
    # what the search verified on its copy is what the episode did
    assert oracle.report["vgpu_hours_planned"] == kpis["vgpu_hours"]


def test_oracle_is_within_budget_and_no_dearer_than_the_deployment_on_medium() -> None:
    env = K8sGpuEnv(profile="medium")
    oracle = OraclePolicy(leads=(2,)).bind(env)
    kpis = run_episode(env, oracle, seed=1000).kpis
    assert kpis["qos_violation_rate"] <= env.config.reward.qos_budget
    # 1 pod x 50 % for 600 s is 1/12 vGPU-h; the oracle may only be cheaper or equal
    assert kpis["vgpu_hours"] <= 0.5 * 600 / 3600 + 1e-12


def test_oracle_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="leads must be steps >= 0"):
        OraclePolicy(leads=(-1,))
    env = _env()
    oracle = OraclePolicy(share=30).bind(env)
    with pytest.raises(ConfigError, match="oracle share 30 is not reachable"):
        run_episode(env, oracle, seed=1)
