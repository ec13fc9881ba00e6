"""The QoS budget as a constraint: a Lagrangian multiplier on the reward's QoS term.

Lagrangian PPO (dual ascent): the policy maximises ``return - lambda * qos_violation``
with ``lambda`` = the env's ``reward.w_qos``; after every rollout ``lambda`` moves with
the measured constraint violation, ``lambda <- clip(lambda + lr * (min(rate / budget,
max_ratio) - 1), w_min, w_max)``, where ``rate`` is the rollout's violating requests over
its requests (all envs together). The reward keeps its four named terms; only the weight
changes, and it is logged as ``constraint/w_qos`` beside ``constraint/violation_rate`` and
``constraint/rate_over_budget``.
"""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback

from k8s_gpu_rl.agents.ppo_config import QosConstraint


def lagrangian_step(w: float, rate: float, budget: float, constraint: QosConstraint) -> float:
    """The multiplier after one rollout whose violation rate was ``rate``."""
    ratio = min(rate / budget, constraint.max_ratio)
    return min(max(w + constraint.lr * (ratio - 1.0), constraint.w_min), constraint.w_max)


class QosLagrangian(BaseCallback):
    """Update ``w_qos`` in every env from each rollout's measured violation rate."""

    def __init__(self, constraint: QosConstraint, w_qos: float, budget: float) -> None:
        super().__init__()
        self.constraint = constraint
        self.w = constraint.initial if constraint.initial is not None else w_qos
        self.budget = budget
        self._requests = 0.0
        self._violations = 0.0

    def _on_training_start(self) -> None:
        self.training_env.env_method("set_reward_weights", w_qos=self.w)

    def _on_rollout_start(self) -> None:
        self._requests = self._violations = 0.0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            n = float(info.get("autoscale/requests", 0.0))
            self._requests += n
            self._violations += n * float(info.get("autoscale/qos_violation_rate", 0.0))
        return True

    def _on_rollout_end(self) -> None:
        if self._requests <= 0:
            return
        rate = self._violations / self._requests
        self.w = lagrangian_step(self.w, rate, self.budget, self.constraint)
        self.training_env.env_method("set_reward_weights", w_qos=self.w)
        self.logger.record("constraint/violation_rate", rate)
        self.logger.record("constraint/rate_over_budget", rate / self.budget)
        self.logger.record("constraint/w_qos", self.w)
