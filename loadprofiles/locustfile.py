"""Locust users that send MobileNetV4 inference requests to Triton, following a load profile.

Run headless against Triton's HTTP port::

    K8SGPURL_PROFILE=mixed locust -f loadprofiles/locustfile.py --headless \\
        --host http://<triton>:8000 --csv results/mixed --csv-full-history

Each :class:`TritonUser` posts one KServe v2 request (binary tensor extension, batch 1,
a fixed random 1x3x224x224 FP32 image) to ``/v2/models/<model>/infer``, then waits the
profile's think time. :class:`ProfileShape` sets the user count stage by stage and ends the
test when the profile ends.

Environment variables:

| variable           | default       | meaning                                    |
|--------------------|---------------|--------------------------------------------|
| K8SGPURL_PROFILE   | ``low``       | load profile: a shipped name or a YAML path |
| K8SGPURL_MODEL     | ``mobilenetv4`` | Triton model name                        |
| K8SGPURL_INPUT     | ``input0``    | the model's input tensor name              |
| K8SGPURL_OUTPUT    | ``output0``   | the model's output tensor name             |

The option ``--load-profile NAME_OR_PATH`` overrides ``K8SGPURL_PROFILE`` (Locust itself
already owns ``--profile``, a label for grouping test runs).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, events, task

if importlib.util.find_spec("loadprofiles") is None:  # run from outside the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k8s_gpu_rl.errors import ConfigError  # noqa: E402
from loadprofiles.kserve_v2 import build_infer_request, random_input  # noqa: E402
from loadprofiles.profile import LoadProfile, load_profile  # noqa: E402

PROFILE_ENV = "K8SGPURL_PROFILE"
"""Environment variable naming the load profile (a shipped name or a YAML path)."""
DEFAULT_PROFILE = "low"
INPUT_SEED = 0
"""Seed of the random input image, the same in every Locust process."""

try:
    PROFILE: LoadProfile = load_profile(os.environ.get(PROFILE_ENV, DEFAULT_PROFILE))
except ConfigError as exc:
    sys.exit(f"{PROFILE_ENV}: {exc}")

REQUEST = build_infer_request(
    model=os.environ.get("K8SGPURL_MODEL", "mobilenetv4"),
    input_name=os.environ.get("K8SGPURL_INPUT", "input0"),
    output_name=os.environ.get("K8SGPURL_OUTPUT", "output0"),
    tensor=random_input(INPUT_SEED),
)


def _profile_argument(value: str) -> LoadProfile:
    try:
        return load_profile(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def chosen_profile(parsed_options: Any) -> LoadProfile:
    """The ``--load-profile`` option's profile if given, else the one ``K8SGPURL_PROFILE`` named."""
    return getattr(parsed_options, "load_profile", None) or PROFILE


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--load-profile",
        type=_profile_argument,
        default=None,
        include_in_web_ui=False,
        help=f"Load profile: a shipped name or a YAML path (overrides ${PROFILE_ENV})",
    )


@events.init.add_listener
def _use_chosen_profile(environment: Any, **_kwargs: Any) -> None:
    profile = chosen_profile(environment.parsed_options)
    TritonUser.wait_time = between(profile.wait_time.min, profile.wait_time.max)


class TritonUser(FastHttpUser):
    """One closed-loop client: an inference request, then the profile's think time."""

    host = "http://localhost:8000"
    wait_time = between(PROFILE.wait_time.min, PROFILE.wait_time.max)

    @task
    def infer(self) -> None:
        """POST one binary-extension inference request; anything but 200 is a failure."""
        with self.client.post(
            REQUEST.path, data=REQUEST.body, headers=REQUEST.headers, catch_response=True
        ) as response:
            if response.status_code == 200:
                response.success()
            else:
                text = (response.text or "")[:200]
                response.failure(f"HTTP {response.status_code}: {text}")


class ProfileShape(LoadTestShape):
    """Follows the chosen load profile's stages; stops the test at the profile's end."""

    def profile(self) -> LoadProfile:
        """The profile this run follows (``--load-profile`` if given, else the env var's)."""
        options = self.runner.environment.parsed_options if self.runner is not None else None
        return chosen_profile(options)

    def tick(self) -> tuple[int, float] | None:
        """``(users, spawn_rate)`` of the current stage, ``None`` after the last one."""
        return self.profile().tick(self.get_run_time())
