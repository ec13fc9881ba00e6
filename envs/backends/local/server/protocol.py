"""What every part of the server shares: Triton's error type, the KServe v2 datatypes and
the protocol's constants.

Error codes follow Triton ``src/http_server.cc`` ``HttpCodeFromError``, which maps the core's
error codes onto HTTP statuses; the messages are the server's and core's own.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MAX_INPUT_SIZE = 1 << 26
"""Triton's ``--http-max-input-size`` default (64 MiB, ``HTTP_DEFAULT_MAX_INPUT_SIZE``)."""
SERVER_NAME = "triton"
SERVER_VERSION = "2.x-k8sgpurl-local"
HEADER_LENGTH = "Inference-Header-Content-Length"
"""The binary tensor extension's header: the size of the JSON part of the body in bytes."""

DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""KServe v2 datatype name -> numpy dtype (little-endian)."""


class TritonError(Exception):
    """An error answered as Triton would: an HTTP status and ``{"error": message}``."""

    CODES = {
        "INTERNAL": 500,
        "NOT_FOUND": 404,
        "UNAVAILABLE": 503,
        "UNSUPPORTED": 501,
        "UNKNOWN": 400,
        "INVALID_ARG": 400,
        "ALREADY_EXISTS": 400,
        "CANCELLED": 400,
        "METHOD_NOT_ALLOWED": 405,  # http_server.cc answers wrong methods directly
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        """The HTTP status Triton answers this error code with."""
        return self.CODES.get(self.code, 400)


def logged_request(message: str) -> str:
    """Core's ``LogRequest()`` prefix (requests here carry no id unless given one)."""
    return "[request id: <id_unknown>] " + message


def invalid(message: str) -> TritonError:
    """An ``INVALID_ARG`` error (HTTP 400)."""
    return TritonError("INVALID_ARG", message)


def json_error(message: str) -> TritonError:
    """A TritonJson error: ``http_server.cc`` answers those as ``INTERNAL`` (HTTP 500)."""
    return TritonError("INTERNAL", message)


def input_size_limit_error(what: str, size: int, limit: int) -> TritonError:
    """``http_server.cc``'s refusal of a body, JSON or tensor over ``--http-max-input-size``:
    ``what`` is e.g. ``"Raw input"`` or ``"JSON input 'x'"``."""
    return invalid(
        f"{what} has a byte_size ({size} bytes) that exceeds the maximum allowed value of "
        f"{limit} bytes. Use --http-max-input-size to increase the limit."
    )
