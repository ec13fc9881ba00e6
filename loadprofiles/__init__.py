"""Load profiles for the Locust users that drive Triton, shared by live runs and the simulator.

Training defaults (``available_profiles``), held-out shapes (``heldout_profiles``) and
seeded generated profiles (``random:seed=N,...``, :class:`GeneratorSpec`) all load
through :func:`load_profile`.

Imports neither Locust nor gevent (training processes import this package); the Locust
side lives in ``loadprofiles/locustfile.py``.
"""

from __future__ import annotations

from k8s_gpu_rl.loadprofiles.generator import GeneratorSpec, generate_profile, parse_spec
from k8s_gpu_rl.loadprofiles.profile import (
    HELDOUT_DIR,
    PROFILES_DIR,
    LoadProfile,
    Stage,
    WaitTime,
    available_profiles,
    heldout_profiles,
    load_profile,
    parse_profile,
    time_scaled,
    user_events,
    users_at,
)

__all__ = [
    "HELDOUT_DIR",
    "PROFILES_DIR",
    "GeneratorSpec",
    "LoadProfile",
    "Stage",
    "WaitTime",
    "available_profiles",
    "generate_profile",
    "heldout_profiles",
    "load_profile",
    "parse_profile",
    "parse_spec",
    "time_scaled",
    "user_events",
    "users_at",
]
