"""The checks Triton's core runs on a decoded request against the model config
(``InferenceRequest::PrepareForInference`` / ``Normalize`` in core ``infer_request.cc``),
in its order and with its messages.

:func:`check_request` runs them all: the inputs' count and names, the outputs' names, the
batch dimension, the datatype, the shape and, for binary data, the byte size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from k8s_gpu_rl.envs.backends.local.server.protocol import DTYPES, invalid, logged_request

if TYPE_CHECKING:
    from k8s_gpu_rl.envs.backends.local.model import ModelConfig

_BATCH_DIM_NOTE = (
    "NOTE: Setting a non-zero max_batch_size in the model config requires a batch "
    "dimension to be prepended to each input shape. If you want to specify the full "
    "shape including the batch dim in your input dims config, try setting "
    "max_batch_size to zero. See the model configuration docs for more info on "
    "max_batch_size."
)


@dataclass(frozen=True)
class DecodedInput:
    """One request input as the HTTP front end read it, before the core's checks."""

    datatype: str
    """The KServe v2 datatype the request gave (``FP32``, ...), not yet checked."""
    shape: list[int]
    """The shape the request gave, batch dimension included."""
    array: np.ndarray | None
    """The flat values when given as JSON ``data``, else ``None``."""
    raw: bytes | None
    """The bytes when given as binary data, else ``None``."""


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def check_input_names(decoded: dict[str, DecodedInput], config: ModelConfig, model: str) -> str:
    """The one input's name, once the request has exactly the model's inputs."""
    if len(decoded) != len(config.inputs):
        got = "[" + ",".join(f"'{n}'" for n in decoded) + "]" if decoded else "[]"
        missing = (
            "[" + ",".join(f"'{i.name}'" for i in config.inputs if i.name not in decoded) + "]"
        )
        raise invalid(
            logged_request(
                f"expected {len(config.inputs)} inputs but got {len(decoded)} inputs for model "
                f"'{model}'. Got input(s) {got}, but missing required input(s) {missing}. "
                "Please provide all required input(s)."
            )
        )
    name = next(iter(decoded))
    if name != config.inputs[0].name:
        raise invalid(f"unexpected inference input '{name}' for model '{model}'")
    return name


def check_output_names(outputs: list[tuple[str, bool]], config: ModelConfig, model: str) -> None:
    """Every requested output is one of the model's."""
    known = {o.name for o in config.outputs}
    for name, _ in outputs:
        if name not in known:
            raise invalid(f"unexpected inference output '{name}' for model '{model}'")


def check_batch(shape: list[int], config: ModelConfig, in_name: str, model: str) -> list[int]:
    """The input's dims without the batch dimension, which must be in 1..max_batch_size
    (a model with ``max_batch_size`` 0 has none)."""
    if config.max_batch_size <= 0:
        return shape
    if not shape:
        raise invalid(
            logged_request(
                f"input '{in_name}' has no shape but model requires batch dimension for '{model}'"
            )
        )
    batch = shape[0]
    if batch > config.max_batch_size:
        raise invalid(
            logged_request(
                f"inference request batch-size must be <= {config.max_batch_size} for '{model}'"
            )
        )
    if batch < 1:  # Triton would pass an empty batch to the backend; refuse it here
        raise invalid(logged_request(f"inference request batch-size must be >= 1 for '{model}'"))
    return shape[1:]


def check_datatype(datatype: str, config: ModelConfig, in_name: str, model: str) -> None:
    """The request's datatype is the config's."""
    expected = config.inputs[0].datatype
    if datatype != expected:
        raise invalid(
            logged_request(
                f"inference input '{in_name}' data-type is '{datatype}', but model '{model}' "
                f"expects '{expected}'"
            )
        )


def check_dims(
    dims: list[int], shape: list[int], config: ModelConfig, in_name: str, model: str
) -> None:
    """The dims (batch dimension removed) are the config's; the message shows the full
    request ``shape`` against the config's (with ``-1`` for the batch)."""
    inp = config.inputs[0]
    if tuple(dims) == tuple(inp.dims):
        return
    batched = config.max_batch_size > 0
    full = ([-1] if batched else []) + list(inp.dims)
    note = _BATCH_DIM_NOTE if batched else ""
    raise invalid(
        logged_request(
            f"unexpected shape for input '{in_name}' for model '{model}'. Expected "
            f"{_shape_text(full)}, got {_shape_text(shape)}. {note}"
        )
    )


def input_array(decoded: DecodedInput, config: ModelConfig, in_name: str, model: str) -> np.ndarray:
    """The input as an array of its shape; binary data must be exactly the shape's size."""
    dtype = DTYPES[config.inputs[0].datatype]
    arr = decoded.array
    if decoded.raw is not None:
        expected = math.prod(decoded.shape) * dtype.itemsize
        if len(decoded.raw) != expected:
            raise invalid(
                logged_request(
                    f"input byte size mismatch for input '{in_name}' for model '{model}'. "
                    f"Expected {expected}, got {len(decoded.raw)}"
                )
            )
        arr = np.frombuffer(decoded.raw, dtype=dtype)
    assert arr is not None
    return arr.reshape(decoded.shape)


def check_request(
    decoded: dict[str, DecodedInput],
    outputs: list[tuple[str, bool]],
    config: ModelConfig,
    model: str,
) -> np.ndarray:
    """All of the core's checks in its order; the model's input array."""
    in_name = check_input_names(decoded, config, model)
    check_output_names(outputs, config, model)
    inp = decoded[in_name]
    dims = check_batch(inp.shape, config, in_name, model)
    check_datatype(inp.datatype, config, in_name, model)
    check_dims(dims, inp.shape, config, in_name, model)
    return input_array(inp, config, in_name, model)
