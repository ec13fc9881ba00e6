"""Tune the user's HPA (CPU target and scale-down window at the Deployment's share).

    python scripts/tune_hpa.py [calibrate_baselines.py options]

The old sweep (a QoS budget of "the default HPA's violation rate + 0.5 percentage
points", 100 times looser than the reward's) is retired: ``hpa-tuned`` is now the
``hpa-tuned`` family of ``scripts/calibrate_baselines.py``, chosen by the same rule and
the same QoS budget as the calibrated baselines. This script runs that family only
(``--family hpa-tuned``) and updates its entry in ``baselines/calibrated.yaml``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    script = Path(__file__).with_name("calibrate_baselines.py")
    sys.argv = [str(script), "--family", "hpa-tuned", *sys.argv[1:]]
    runpy.run_path(str(script), run_name="__main__")
