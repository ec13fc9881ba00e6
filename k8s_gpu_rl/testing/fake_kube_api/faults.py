"""Fault injection and the request log."""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from k8s_gpu_rl.testing.fake_kube_api.errors import _DEFAULT_MESSAGES, ApiError


class RecordedRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # Content-Type, Accept, Authorization (those present)
    body: Any  # decoded JSON, the raw text if not JSON, None if empty


class _Fault(NamedTuple):
    method: str
    path_re: re.Pattern[str]
    status: int
    retry_after: float | None
    message: str | None
    remaining: list[int]  # mutable counter


class FaultsMixin:
    """Injected error responses (:meth:`fail_next`) and the recorded requests."""

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` ("*" = any) and
        ``path_regex`` (re.search on the path, no query) with a Status of code ``status``.
        A 429 always carries ``Retry-After`` (``retry_after`` or 1 s)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._faults.append(
                _Fault(
                    method.upper(), re.compile(path_regex), status, retry_after, message, [times]
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests_matching(self, method: str = "*", path_regex: str = ".*") -> list[RecordedRequest]:
        rx = re.compile(path_regex)
        with self._lock:
            return [
                r
                for r in self.requests
                if (method == "*" or r.method == method.upper()) and rx.search(r.path)
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _check_faults(self, method: str, path: str) -> None:
        for fault in self._faults:
            if fault.method not in ("*", method) or not fault.path_re.search(path):
                continue
            fault.remaining[0] -= 1
            if fault.remaining[0] <= 0:
                self._faults.remove(fault)
            headers, details = {}, None
            if fault.retry_after is not None:
                secs = max(1, math.ceil(fault.retry_after))
                headers["Retry-After"] = str(secs)
                details = {"retryAfterSeconds": secs}
            msg = fault.message or _DEFAULT_MESSAGES.get(fault.status, "injected fault")
            raise ApiError(fault.status, msg, details=details, headers=headers)
