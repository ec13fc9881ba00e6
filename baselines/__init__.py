"""Baseline autoscaling policies compared against the RL agent.

Every baseline is a policy with stable-baselines3's ``predict`` (see
:mod:`k8s_gpu_rl.baselines.base`), bound to the env it controls:

| name | module | what it does |
|---|---|---|
| ``hpa`` | :mod:`k8s_gpu_rl.baselines.hpa` | the user's Kubernetes HPA (autoscaling/v2), CPU 70 %, the Deployment's share |
| ``hpa-autoscale`` | :mod:`k8s_gpu_rl.baselines.hpa` | the same HPA as ``kubectl autoscale`` creates it: no ``spec.behavior`` (the controller's legacy path) |
| ``hpa-tuned`` | :mod:`k8s_gpu_rl.baselines.calibrated` | the user's HPA (CPU, the Deployment's share) with target and window calibrated |
| ``hpa-calibrated`` | :mod:`k8s_gpu_rl.baselines.calibrated` | the HPA with share, metric, target and window calibrated |
| ``kpa`` | :mod:`k8s_gpu_rl.baselines.kpa` | Knative's KPA on Triton's in-flight requests |
| ``kpa-calibrated`` | :mod:`k8s_gpu_rl.baselines.calibrated` | the KPA with share, metric, target and window calibrated |
| ``static`` | :mod:`k8s_gpu_rl.baselines.static` | the Deployment as deployed, 1 x 50 % |
| ``static-calibrated`` | :mod:`k8s_gpu_rl.baselines.calibrated` | fixed replicas and share, calibrated |
| ``oracle`` | :mod:`k8s_gpu_rl.baselines.oracle` | clairvoyant schedule search at the QoS budget: the cost lower bound |

The calibrated ones read ``baselines/calibrated.yaml`` (``scripts/calibrate_baselines.py``).

``make_policy(name, env, **kwargs)`` builds one and binds it. The trained agent
(``ppo``) is loaded by ``evaluate`` through :mod:`k8s_gpu_rl.agents.policy`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k8s_gpu_rl.config import suggest
from k8s_gpu_rl.errors import ConfigError


def _hpa(**kw: Any) -> Any:
    from k8s_gpu_rl.baselines.hpa import HpaPolicy

    return HpaPolicy(**kw)


def _hpa_autoscale(**kw: Any) -> Any:
    from k8s_gpu_rl.baselines.hpa import HpaPolicy

    policy = HpaPolicy(**{"behavior": False, **kw})
    policy.name = "hpa-autoscale"
    return policy


def _hpa_tuned(**kw: Any) -> Any:
    from k8s_gpu_rl.baselines.calibrated import TunedHpaPolicy

    return TunedHpaPolicy(**kw)


def _hpa_calibrated(**kw: Any) -> Any:
    from k8s_gpu_rl.baselines.calibrated import CalibratedHpaPolicy

    return CalibratedHpaPolicy(**kw)


def _kpa_calibrated(**kw: Any) -> Any:
    from k8s_gpu_rl.baselines.calibrated import CalibratedKpaPolicy

    return CalibratedKpaPolicy(**kw)


def _static_calibrated(**kw: Any) -> Any:
    from k8s_gpu_rl.baselines.calibrated import CalibratedStaticPolicy

    return CalibratedStaticPolicy(**kw)


def _kpa(**kw: Any) -> Any:
    from k8s_gpu_rl.baselines.kpa import KpaPolicy

    return KpaPolicy(**kw)


def _static(**kw: Any) -> Any:
    from k8s_gpu_rl.baselines.static import StaticPolicy

    return StaticPolicy(**kw)


def _oracle(**kw: Any) -> Any:
    from k8s_gpu_rl.baselines.oracle import OraclePolicy

    return OraclePolicy(**kw)


REGISTRY: dict[str, Callable[..., Any]] = {
    "hpa": _hpa,
    "hpa-autoscale": _hpa_autoscale,
    "hpa-tuned": _hpa_tuned,
    "hpa-calibrated": _hpa_calibrated,
    "kpa": _kpa,
    "kpa-calibrated": _kpa_calibrated,
    "static": _static,
    "static-calibrated": _static_calibrated,
    "oracle": _oracle,
}
BASELINES = tuple(REGISTRY)
CALIBRATED = ("hpa-tuned", "hpa-calibrated", "kpa-calibrated", "static-calibrated")
"""The baselines that read ``baselines/calibrated.yaml``."""


def check_policy_name(name: str, extra: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` with a "did you mean" unless ``name`` is known."""
    known = (*BASELINES, *extra)
    if name not in known:
        raise ConfigError(
            f"unknown policy {name!r}{suggest(name, known)}; available: {', '.join(known)}"
        )


def make_policy(name: str, env: Any | None = None, **kwargs: Any) -> Any:
    """Build baseline ``name`` with ``kwargs`` and bind it to ``env`` (if given)."""
    check_policy_name(name)
    try:
        policy = REGISTRY[name](**kwargs)
    except TypeError as exc:  # an unknown keyword argument
        raise ConfigError(f"policy {name!r}: {exc}") from None
    return policy.bind(env) if env is not None else policy


__all__ = ["BASELINES", "CALIBRATED", "REGISTRY", "check_policy_name", "make_policy"]
