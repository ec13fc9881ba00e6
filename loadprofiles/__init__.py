"""Load profiles for the Locust users that drive Triton, shared by live runs and the simulator.

Imports neither Locust nor gevent (training processes import this package); the Locust
side lives in ``loadprofiles/locustfile.py``.
"""

from __future__ import annotations

from k8s_gpu_rl.loadprofiles.profile import (
    PROFILES_DIR,
    LoadProfile,
    Stage,
    WaitTime,
    available_profiles,
    load_profile,
    parse_profile,
    time_scaled,
    user_events,
    users_at,
)

__all__ = [
    "PROFILES_DIR",
    "LoadProfile",
    "Stage",
    "WaitTime",
    "available_profiles",
    "load_profile",
    "parse_profile",
    "time_scaled",
    "user_events",
    "users_at",
]
