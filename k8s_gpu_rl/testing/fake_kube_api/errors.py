"""Errors the fake answers with, as v1 Status bodies (NotFound, Invalid, Conflict...)."""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.kinds import _Kind

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

_DEFAULT_MESSAGES = {
    409: "the server reported a conflict",
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted",
}


class ApiError(Exception):
    """Raised inside the fake; turned into a v1 Status response."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _not_found(kind: _Kind, name: str) -> ApiError:
    details = {"name": name, "kind": kind.resource}
    if kind.group:
        details["group"] = kind.group
    return ApiError(404, f'{kind.qualified} "{name}" not found', "NotFound", details)


def _invalid(kind: _Kind, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid; ``causes`` are (field, message) pairs, as FieldValueInvalid."""
    text = "; ".join(f"{f}: {m}" for f, m in causes)
    title = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    details: dict[str, Any] = {
        "name": name,
        "kind": kind.kind,
        "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
    }
    if kind.group:
        details["group"] = kind.group
    return ApiError(422, f'{title} "{name}" is invalid: {text}', "Invalid", details)


def _conflict(kind: _Kind, name: str) -> ApiError:
    details = {"name": name, "kind": kind.resource}
    if kind.group:
        details["group"] = kind.group
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "Conflict",
        details,
    )


def _namespace_not_found(name: str) -> ApiError:
    return ApiError(
        404, f'namespaces "{name}" not found', "NotFound", {"name": name, "kind": "namespaces"}
    )


def _already_exists(kind: _Kind, name: str) -> ApiError:
    details = {"name": name, "kind": kind.resource}
    if kind.group:
        details["group"] = kind.group
    return ApiError(409, f'{kind.qualified} "{name}" already exists', "AlreadyExists", details)
