"""KServe v2 / Open Inference Protocol requests with Triton's binary tensor extension.

The body is a JSON header followed by the raw little-endian tensor bytes; the header
``Inference-Header-Content-Length`` gives the JSON part's length, and each input carries
``"parameters": {"binary_data_size": N}`` (see ``shared/FACTS.md``, Triton section). Kept
apart from the locustfile so it can be built and checked without importing Locust/gevent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

INPUT_SHAPE = (1, 3, 224, 224)
"""MobileNetV4 input at batch size 1: NCHW, 224x224 RGB."""
INPUT_DATATYPE = "FP32"
"""KServe v2 datatype of the input tensor."""
HEADER_LENGTH = "Inference-Header-Content-Length"
"""HTTP header giving the JSON part's length in bytes."""


@dataclass(frozen=True)
class InferRequest:
    """One ready-to-send inference request."""

    path: str
    """URL path, ``/v2/models/<model>/infer``."""
    body: bytes
    """JSON header followed by the raw input tensor."""
    headers: dict[str, str]
    """HTTP headers (the JSON header length and the content type)."""
    json_length: int
    """Length in bytes of the JSON part at the start of ``body``."""


def random_input(seed: int = 0, shape: tuple[int, ...] = INPUT_SHAPE) -> np.ndarray:
    """A reproducible float32 input tensor (standard normal, like a normalised image)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape, dtype=np.float32)


def build_infer_request(
    model: str, input_name: str, output_name: str, tensor: np.ndarray
) -> InferRequest:
    """The binary-extension request that sends ``tensor`` (FP32) to ``model``."""
    raw = np.ascontiguousarray(tensor, dtype="<f4").tobytes()
    header = {
        "inputs": [
            {
                "name": input_name,
                "shape": list(tensor.shape),
                "datatype": INPUT_DATATYPE,
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": output_name, "parameters": {"binary_data": True}}],
    }
    json_bytes = json.dumps(header, separators=(",", ":")).encode()
    return InferRequest(
        path=f"/v2/models/{model}/infer",
        body=json_bytes + raw,
        headers={HEADER_LENGTH: str(len(json_bytes)), "Content-Type": "application/octet-stream"},
        json_length=len(json_bytes),
    )
