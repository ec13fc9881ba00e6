"""The Deployment controller's arithmetic (``k8s_gpu_rl.envs.sim.pods``), counts in, counts out.

``rollout_plan`` must behave as Kubernetes' RollingUpdate strategy: maxSurge rounds up,
maxUnavailable rounds down; during a rollout the Deployment never holds more than
``replicas + surge`` pods and never fewer than ``replicas - unavailable`` available ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from k8s_gpu_rl.envs.sim.pods import (
    Phase,
    Pod,
    RolloutPlan,
    Template,
    deletion_order,
    rollout_plan,
    surge_and_unavailable,
)


@pytest.mark.parametrize(
    ("replicas", "max_surge", "max_unavailable", "expected"),
    [
        (4, 0.25, 0.25, (1, 1)),
        (1, 0.25, 0.25, (1, 0)),  # surge rounds up, unavailable down
        (10, 0.25, 0.25, (3, 2)),
        (3, 0.25, 0.25, (1, 0)),
        (4, 0.3, 0.3, (2, 1)),
        (10, 0.3, 0.3, (3, 3)),  # 0.3 * 10 = 3.0000000000000004 must not round up to 4
        (2, 0.0, 0.25, (0, 1)),  # both 0 would deadlock: unavailable becomes 1
        (0, 0.25, 0.25, (0, 1)),
        (4, 1.0, 0.0, (4, 0)),
    ],
)
def test_surge_and_unavailable_rounding(
    replicas: int, max_surge: float, max_unavailable: float, expected: tuple[int, int]
) -> None:
    assert surge_and_unavailable(replicas, max_surge, max_unavailable) == expected


def test_plain_scale_up_and_down_without_old_pods() -> None:
    # RolloutPlan(create, delete_old, delete_new)
    assert rollout_plan(5, 2, 2, 0, 0, 0.25, 0.25) == RolloutPlan(3, 0, 0)
    assert rollout_plan(1, 3, 3, 0, 0, 0.25, 0.25) == RolloutPlan(0, 0, 2)
    assert rollout_plan(0, 2, 1, 0, 0, 0.25, 0.25) == RolloutPlan(0, 0, 2)
    assert rollout_plan(3, 3, 1, 0, 0, 0.25, 0.25) == RolloutPlan(0, 0, 0)


@dataclass
class Rollout:
    """A Deployment's pod counts, advanced by applying ``rollout_plan`` as the controller does."""

    replicas: int
    new_total: int = 0
    new_ready: int = 0
    old_total: int = 0
    old_ready: int = 0

    def reconcile(self) -> RolloutPlan:
        plan = rollout_plan(
            self.replicas,
            self.new_total,
            self.new_ready,
            self.old_total,
            self.old_ready,
            0.25,
            0.25,
        )
        self.new_total += plan.create
        # the ReplicaSet deletes not-ready pods first
        unready_old = min(plan.delete_old, self.old_total - self.old_ready)
        self.old_total -= plan.delete_old
        self.old_ready -= plan.delete_old - unready_old
        self.new_total -= plan.delete_new
        self.new_ready = min(self.new_ready, self.new_total)
        return plan

    @property
    def total(self) -> int:
        return self.new_total + self.old_total

    @property
    def available(self) -> int:
        return self.new_ready + self.old_ready


def test_rolling_update_4_to_4_step_by_step() -> None:
    # maxSurge 25 % of 4 -> 1, maxUnavailable 25 % of 4 -> 1: between 3 and 5 pods
    d = Rollout(replicas=4, old_total=4, old_ready=4)
    # RolloutPlan(create, delete_old, delete_new)
    assert d.reconcile() == RolloutPlan(1, 1, 0)
    assert (d.new_total, d.new_ready, d.old_total, d.old_ready) == (1, 0, 3, 3)
    # the new pod is not ready yet: one more may surge, no old pod may go
    assert d.reconcile() == RolloutPlan(1, 0, 0)
    assert (d.total, d.available) == (5, 3)
    assert d.reconcile() == RolloutPlan(0, 0, 0)  # waits
    d.new_ready = 2
    assert d.reconcile() == RolloutPlan(0, 2, 0)
    assert (d.new_total, d.old_total, d.available) == (2, 1, 3)
    assert d.reconcile() == RolloutPlan(2, 0, 0)
    assert (d.total, d.available) == (5, 3)
    d.new_ready = 4
    assert d.reconcile() == RolloutPlan(0, 1, 0)
    assert (d.new_total, d.new_ready, d.old_total) == (4, 4, 0)
    assert d.reconcile() == RolloutPlan(0, 0, 0)


@pytest.mark.parametrize("ready_lag", [0, 1, 3])
@pytest.mark.parametrize("replicas", [1, 2, 4, 7, 10])
def test_rolling_update_respects_surge_and_unavailable_at_every_step(
    replicas: int, ready_lag: int
) -> None:
    """New pods turn ready ``ready_lag`` reconciles after creation; limits hold throughout."""
    surge, unavailable = surge_and_unavailable(replicas, 0.25, 0.25)
    d = Rollout(replicas=replicas, old_total=replicas, old_ready=replicas)
    created_at: list[int] = []
    for step in range(200):
        d.new_ready = sum(step - c >= ready_lag for c in created_at[: d.new_total])
        plan = d.reconcile()
        created_at += [step] * plan.create
        assert d.total <= replicas + surge, f"step {step}: {d}"
        assert d.available >= replicas - unavailable, f"step {step}: {d}"
        if d.old_total == 0 and d.new_ready == replicas:
            break
    else:
        pytest.fail(f"rollout did not finish: {d}")
    assert d.new_total == replicas


def test_single_replica_keeps_the_old_pod_until_the_new_one_is_ready() -> None:
    # replicas 1: surge 1, unavailable 0
    assert rollout_plan(1, 0, 0, 1, 1, 0.25, 0.25) == RolloutPlan(1, 0, 0)
    for _ in range(3):  # however long the new pod takes to start
        assert rollout_plan(1, 1, 0, 1, 1, 0.25, 0.25) == RolloutPlan(0, 0, 0)
    assert rollout_plan(1, 1, 1, 1, 1, 0.25, 0.25) == RolloutPlan(0, 1, 0)


def test_unready_old_pods_are_cleaned_up_first() -> None:
    # 4 old pods of which 2 crash-loop: they are not available, so deleting them costs nothing
    plan = rollout_plan(4, 0, 0, 4, 2, 0.25, 0.25)
    assert plan.create == 1
    # budget = total 4 - min available 3 - new unready 0 = 1: one unready old pod goes
    assert plan.delete_old == 1
    # a crash-looping new template never becomes ready: the old ready pods stay
    assert rollout_plan(4, 2, 0, 3, 3, 0.25, 0.25) == RolloutPlan(0, 0, 0)


def test_scaling_during_a_rollout_keeps_within_surge() -> None:
    # scale 4 -> 8 mid-rollout: surge 2 of 8, 4 old ready, 1 new starting: 5 more fit
    assert rollout_plan(8, 1, 0, 4, 4, 0.25, 0.25).create == 5
    # scale down 4 -> 2 mid-rollout: new pods beyond replicas go
    assert rollout_plan(2, 3, 3, 2, 2, 0.25, 0.25).delete_new == 1


def pod(uid: int, phase: Phase) -> Pod:
    return Pod(uid=uid, slot=uid, template=Template(50, 5120), created_s=0.0, phase=phase)


def test_deletion_order_not_running_then_starting_then_newest_ready() -> None:
    pods = [
        pod(0, Phase.READY),
        pod(1, Phase.STARTING),
        pod(2, Phase.PENDING),
        pod(3, Phase.READY),
        pod(4, Phase.BACKOFF),
    ]
    assert [p.uid for p in deletion_order(pods)] == [4, 2, 1, 3, 0]


def test_pod_is_ready_from_its_ready_instant() -> None:
    p = pod(0, Phase.STARTING)
    p.ready_s = 30.0
    assert not p.is_ready(29.999)
    assert p.is_ready(30.0)
    assert not pod(1, Phase.TERMINATING).is_ready(0.0)
    assert pod(2, Phase.READY).is_ready(0.0)


def test_rollout_can_start_rules() -> None:
    """Same share: nothing to roll; during a rollout: never; maxUnavailable >= 1: always;
    else only if a new pod fits beside the current ones."""
    from k8s_gpu_rl.envs.sim.pods import Template, rollout_can_start

    cur, new = Template(50, 5120), Template(30, 3072)
    calls = []

    def fits(answer: bool):
        def f() -> bool:
            calls.append(answer)
            return answer

        return f

    assert rollout_can_start(cur, cur, True, 1, 0.25, 0.25, fits(False))
    assert not rollout_can_start(cur, new, True, 1, 0.25, 0.25, fits(True))
    assert rollout_can_start(cur, new, False, 4, 0.25, 0.25, fits(False))  # 4 x 25 % = 1
    assert calls == []  # placement is only asked when it decides
    assert not rollout_can_start(cur, new, False, 2, 0.25, 0.25, fits(False))
    assert rollout_can_start(cur, new, False, 2, 0.25, 0.25, fits(True))
    assert calls == [False, True]
