"""The Deployment as deployed: fixed replicas and vGPU share, no autoscaler at all."""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.baselines.base import BaselinePolicy, Desired, roll_share_first
from k8s_gpu_rl.errors import ConfigError


class StaticPolicy(BaselinePolicy):
    """Holds ``replicas`` pods at ``gpucores`` (defaults 1 x 50 %, the user's Deployment).

    A setting other than the Deployment's initial one is reached in the first steps: the
    share first, holding the replica count (:func:`~k8s_gpu_rl.baselines.base.roll_share_first`),
    then the replicas, at most +-2 per step.
    """

    name = "static"

    def __init__(self, replicas: int = 1, gpucores: int = 50) -> None:
        super().__init__()
        if replicas < 1:
            raise ConfigError(f"static replicas must be >= 1, got {replicas!r}")
        if not 0 < gpucores <= 100:
            raise ConfigError(f"static gpucores must be in 1..100, got {gpucores!r}")
        self.replicas = int(replicas)
        self.gpucores = int(gpucores)

    def bind(self, env: Any) -> StaticPolicy:
        super().bind(env)
        if self.gpucores not in self.config.share_levels:
            raise ConfigError(
                f"static gpucores {self.gpucores} is not one of the env's share_levels "
                f"{list(self.config.share_levels)}"
            )
        return self

    def decide(self, now_s: float) -> Desired:
        return roll_share_first(self.backend, Desired(self.replicas, self.gpucores))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "replicas": self.replicas, "gpucores": self.gpucores}
