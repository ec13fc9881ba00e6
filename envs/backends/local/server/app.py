"""The state the HTTP handlers share: the served model, readiness, draining and in-flight
accounting, and Triton's model lookup (version strings, unknown models)."""

from __future__ import annotations

import threading

from k8s_gpu_rl.envs.backends.local.server.protocol import TritonError, invalid
from k8s_gpu_rl.envs.backends.local.server.served import ServedModel


def _check_version_string(version: str) -> None:
    """A version in the path must be an integer >= 0 (Triton's messages, ``stol``)."""
    try:
        v = int(version)
    except ValueError:
        raise invalid(
            f"failed to get model version from specified version string '{version}' "
            "(details: stol), version should be an integral value > 0"
        ) from None
    if v < 0:
        raise invalid(
            f"invalid model version specified '{version}' , version should be an integral value > 0"
        )


class TritonApp:
    """State shared by the HTTP handlers: the model, readiness, in-flight accounting."""

    def __init__(self, model: ServedModel, max_input_size: int) -> None:
        self.model = model
        self.max_input_size = max_input_size
        self.draining = False
        self._inflight = 0
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """Ready for traffic: the model is loaded and the server is not draining."""
        return self.model.ready and not self.draining

    def enter(self) -> None:
        """A request started."""
        with self._lock:
            self._inflight += 1

    def leave(self) -> None:
        """A request was answered (or failed)."""
        with self._lock:
            self._inflight -= 1

    def inflight(self) -> int:
        """Requests being handled now."""
        with self._lock:
            return self._inflight

    def lookup(self, name: str, version: str | None) -> ServedModel:
        """The model, or Triton's errors for a bad version string / unknown model."""
        if version:
            _check_version_string(version)
        if name != self.model.name:
            raise TritonError("NOT_FOUND", f"Request for unknown model: '{name}' is not found")
        if version and version != self.model.version and int(version) != 0:
            raise TritonError(
                "NOT_FOUND", f"Request for unknown model: '{name}' version {version} is not found"
            )
        if not self.model.ready:
            raise TritonError(
                "NOT_FOUND", f"Request for unknown model: '{name}' has no available versions"
            )
        return self.model
