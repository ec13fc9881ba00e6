"""The framing of a KServe v2 request body as Triton's HTTP front end reads it: the
``Content-Length`` and ``Inference-Header-Content-Length`` headers, the refusal of a body
over ``--http-max-input-size``, and the split of the JSON header from the binary part
(binary tensor extension)."""

from __future__ import annotations

import json
from typing import Any

from k8s_gpu_rl.envs.backends.local.server.protocol import (
    HEADER_LENGTH,
    TritonError,
    input_size_limit_error,
    invalid,
    json_error,
)

_INT32_RANGE = "value is out of range [ -2147483648, 2147483647 ]"


def _parse_int32(raw: str, what: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise invalid(f"Unable to parse {what}, got: {raw}") from None
    if not -(2**31) <= value < 2**31:
        raise invalid(f"Unable to parse {what}, {_INT32_RANGE}, got: {raw}")
    return value


def parse_content_length(raw: str | None) -> int:
    """The ``Content-Length`` header's value (0 when absent)."""
    if raw is None:
        return 0
    value = _parse_int32(raw, "Content-Length")
    if value < 0:
        raise invalid(f"Unable to parse Content-Length, got: {raw}")
    return value


def parse_header_length(raw: str | None, content_length: int) -> int | None:
    """``Inference-Header-Content-Length``: ``None`` when absent (the body is all JSON),
    0 for a raw binary request, else the JSON part's size."""
    if raw is None:
        return None
    value = _parse_int32(raw, HEADER_LENGTH)
    if value < 0 or value > content_length:
        raise invalid(f"inference header size should be in range (0, {content_length}), got: {raw}")
    return value


def _safe_int(text: str, default: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


def oversized_body_error(length: int, header_raw: str | None, limit: int) -> TritonError:
    """The error for a ``Content-Length`` over ``--http-max-input-size``, naming the raw
    input, the JSON or the whole body as Triton does."""
    if header_raw is not None and header_raw.strip() == "0":
        return input_size_limit_error("Raw input", length, limit)
    json_len = length if header_raw is None else min(length, _safe_int(header_raw, length))
    what = "request JSON" if json_len > limit else "request body"
    return invalid(
        f"{what} size of {json_len if json_len > limit else length} bytes exceeds the "
        f"maximum allowed input size of {limit} bytes. Use --http-max-input-size to "
        "increase the limit."
    )


def split_header(body: bytes, header_length: int | None, max_input_size: int) -> tuple[Any, int]:
    """The request's JSON document and its length in bytes (the binary part follows it)."""
    hlen = len(body) if header_length is None else header_length
    if hlen > max_input_size:
        raise invalid(
            f"request JSON size of {hlen} bytes exceeds the maximum allowed input size of "
            f"{max_input_size} bytes. Use --http-max-input-size to increase the limit."
        )
    try:
        doc = json.loads(body[:hlen])
    except (ValueError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", 0)
        msg = getattr(exc, "msg", str(exc))
        raise json_error(f"failed to parse the request JSON buffer: {msg}. at {pos}") from None
    if not isinstance(doc, dict):
        raise json_error("Unable to parse 'inputs': attempt to access JSON non-object as object")
    return doc, hlen
