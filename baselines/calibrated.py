"""The calibrated baselines: each family's controller with the parameters calibration chose.

``baselines/calibrated.yaml`` (written by ``scripts/calibrate_baselines.py``, see
:mod:`k8s_gpu_rl.baselines.calibration` for the choice rule and
:mod:`k8s_gpu_rl.baselines.grids` for the grids) holds one entry per family:

| name | controller | knobs chosen |
|---|---|---|
| ``hpa-calibrated`` | the HPA | share, metric, target, scale-down window |
| ``kpa-calibrated`` | the KPA | share, metric, target, stable window |
| ``static-calibrated`` | static | share, replicas |
| ``hpa-tuned`` | the HPA on CPU at the Deployment's share | target, scale-down window |

Keyword arguments given to a policy override the file's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8s_gpu_rl.baselines.grids import FAMILIES, check_family
from k8s_gpu_rl.baselines.hpa import HpaPolicy
from k8s_gpu_rl.baselines.kpa import KpaPolicy
from k8s_gpu_rl.baselines.static import StaticPolicy
from k8s_gpu_rl.config import read_yaml
from k8s_gpu_rl.errors import ConfigError

CALIBRATED_PATH = Path(__file__).with_name("calibrated.yaml")
GRID_PATH = Path(__file__).with_name("calibrated_grid.csv")


def load_calibrated(family: str, path: str | Path = CALIBRATED_PATH) -> dict[str, Any]:
    """The parameters ``calibrated.yaml`` holds for ``family``."""
    check_family(family)
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"{path}: no calibrated parameters; run `python scripts/calibrate_baselines.py` first"
        )
    data = read_yaml(path)
    families = data.get("families") if isinstance(data, dict) else None
    if not isinstance(families, dict) or family not in families:
        raise ConfigError(
            f"{path}: no entry for {family!r} under 'families' "
            f"(expected entries for {', '.join(FAMILIES)}); rerun scripts/calibrate_baselines.py"
        )
    params = families[family].get("params") if isinstance(families[family], dict) else None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: families.{family}.params must be a mapping, got {params!r}")
    return dict(params)


class CalibratedHpaPolicy(HpaPolicy):
    """``hpa-calibrated``: the HPA with its share, metric, target and window calibrated."""

    name = "hpa-calibrated"
    family = "hpa-calibrated"

    def __init__(self, path: str | Path = CALIBRATED_PATH, **overrides: Any) -> None:
        self.source = Path(path)
        super().__init__(**{**load_calibrated(self.family, path), **overrides})


class TunedHpaPolicy(CalibratedHpaPolicy):
    """``hpa-tuned``: the user's HPA (CPU, the Deployment's share), target and window tuned
    under the same rule and QoS budget as the calibrated families."""

    name = "hpa-tuned"
    family = "hpa-tuned"


class CalibratedKpaPolicy(KpaPolicy):
    """``kpa-calibrated``: the KPA with its share, metric, target and window calibrated."""

    name = "kpa-calibrated"

    def __init__(self, path: str | Path = CALIBRATED_PATH, **overrides: Any) -> None:
        self.source = Path(path)
        super().__init__(**{**load_calibrated(self.name, path), **overrides})


class CalibratedStaticPolicy(StaticPolicy):
    """``static-calibrated``: fixed replicas and share, both calibrated."""

    name = "static-calibrated"

    def __init__(self, path: str | Path = CALIBRATED_PATH, **overrides: Any) -> None:
        self.source = Path(path)
        super().__init__(**{**load_calibrated(self.name, path), **overrides})
