"""KServe v2 over HTTP as Triton's front end (``src/http_server.cc``) reads and writes it:
the JSON request with the binary tensor extension, and the response.

Each step of reading a request is one function, in the order Triton runs them:

1. the body's lengths and the JSON header split from the binary part (:mod:`.framing`);
2. the request's own fields (:func:`request_fields`);
3. each input's fields (:func:`input_fields`), then its data: binary
   (:func:`slice_binary`) or JSON (:func:`json_input`); :func:`read_inputs` runs these
   over all inputs and refuses leftover bytes;
4. the requested outputs (:func:`requested_outputs`);
5. the core's checks against the model config (:mod:`.checks`).

:func:`parse_infer_request` chains them; :func:`encode_infer_response` writes the answer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from k8s_gpu_rl.envs.backends.local.server.checks import DecodedInput, check_request, input_array
from k8s_gpu_rl.envs.backends.local.server.framing import split_header
from k8s_gpu_rl.envs.backends.local.server.protocol import (
    DTYPES,
    TritonError,
    input_size_limit_error,
    invalid,
    json_error,
    logged_request,
)

if TYPE_CHECKING:
    from k8s_gpu_rl.envs.backends.local.model import ModelConfig, TensorConfig
    from k8s_gpu_rl.envs.backends.local.server.served import ServedModel

_NOT_UINT = "attempt to access JSON non-unsigned-integer as unsigned-integer"


@dataclass
class ParsedRequest:
    """An infer request ready for the batcher."""

    array: np.ndarray
    """The model input, shaped as the request said (batch dimension first)."""
    outputs: list[tuple[str, bool]]
    """(output name, binary) in response order."""
    request_id: str | None


# ----------------------------------------------------------------------------- request fields


def request_fields(doc: dict[str, Any]) -> tuple[str | None, bool, list[Any]]:
    """The request's ``id``, its ``binary_data_output`` default and its ``inputs``."""
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise json_error("Unable to parse 'id': attempt to access JSON non-string as string")
    params = doc.get("parameters", {})
    if not isinstance(params, dict):
        raise json_error("Unable to parse 'parameters': attempt to access JSON non-object")
    binary_default = params.get("binary_data_output", False) is True
    inputs = doc.get("inputs")
    if not isinstance(inputs, list):
        raise json_error("Unable to parse 'inputs': attempt to access JSON non-array as array")
    return request_id, binary_default, inputs


# ----------------------------------------------------------------------------- one input


def _uint(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise json_error(f"Unable to parse '{what}': {_NOT_UINT}")
    return value


def _string(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise json_error(f"Unable to parse '{key}': attempt to access JSON non-string as string")
    return value


def _check_one_data_field(item: dict[str, Any], params: dict[str, Any]) -> None:
    has = [
        k
        for k, present in (
            ("'data'", "data" in item),
            ("'binary_data_size'", "binary_data_size" in params),
            ("'shared_memory_region'", "shared_memory_region" in params),
        )
        if present
    ]
    if len(has) != 1:
        detail = " no field is set" if not has else " set " + " ".join(has)
        raise invalid(
            "Input must set only one of the following fields: 'data', 'binary_data_size' "
            "in 'parameters', 'shared_memory_region' in 'parameters'. But" + detail
        )


def input_fields(item: Any) -> tuple[str, str, list[int], dict[str, Any]]:
    """One entry of ``inputs``: its name, datatype, shape and parameters (a non-object
    ``parameters`` counts as none), checking it carries exactly one kind of data."""
    if not isinstance(item, dict):
        raise json_error("attempt to access JSON non-object as object")
    params = item.get("parameters", {})
    if not isinstance(params, dict):
        params = {}
    _check_one_data_field(item, params)
    name = _string(item, "name")
    datatype = _string(item, "datatype")
    shape_json = item.get("shape")
    if not isinstance(shape_json, list):
        raise json_error("Unable to parse 'shape': attempt to access JSON non-array as array")
    return name, datatype, [_uint(d, "shape") for d in shape_json], params


def slice_binary(
    body: bytes,
    offset: int,
    params: dict[str, Any],
    header_length: int | None,
    in_name: str,
    model_name: str,
) -> bytes:
    """The ``binary_data_size`` bytes of one input, starting at ``offset`` in the body."""
    size = _uint(params["binary_data_size"], "binary_data_size")
    if header_length is None and size > 0:
        raise invalid(
            "must specify valid 'Infer-Header-Content-Length' in request header and "
            "'binary_data_size' when passing inputs in binary data format"
        )
    chunk = body[offset : offset + size]
    if len(chunk) != size:
        raise invalid(
            f"unexpected size for input '{in_name}', expecting {size - len(chunk)} "
            f"additional bytes for model '{model_name}'"
        )
    return chunk


def _flatten(data: Any, out: list[Any], depth: int = 0) -> None:
    if depth >= 100:
        raise invalid("JSON nesting depth exceeds maximum allowed limit (100)")
    for el in data:
        if isinstance(el, list):
            _flatten(el, out, depth + 1)
        else:
            out.append(el)


def _flat_numbers(data: list[Any], dtype: np.dtype) -> np.ndarray:
    """Element by element, as TritonJson reads them: booleans only for BOOL, numbers else."""
    flat: list[Any] = []
    _flatten(data, flat)
    for el in flat:
        ok = isinstance(el, bool) if dtype == np.dtype("?") else isinstance(el, int | float)
        if not ok or (isinstance(el, bool) and dtype != np.dtype("?")):
            raise json_error("Unable to parse 'data': attempt to access JSON non-number as number")
    try:
        return np.asarray(flat, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise json_error(f"Unable to parse 'data': {exc}") from None


def json_tensor(data: Any, dtype: np.dtype, count: int) -> np.ndarray:
    """Read a JSON ``data`` array (flat or nested) as Triton's ReadDataFromJson does."""
    if not isinstance(data, list):
        raise json_error("Unable to parse 'data': attempt to access JSON non-array as array")
    try:
        arr = np.asarray(data, dtype=dtype).reshape(-1)
    except (ValueError, TypeError, OverflowError):
        arr = _flat_numbers(data, dtype)
    if arr.size > count:
        raise json_error("Unable to parse 'data': Shape does not match true shape of 'data' field")
    if arr.size < count:
        raise json_error("Failed to parse 'data' field: shape does not match true shape")
    return arr


def json_input(
    data: Any, in_name: str, datatype: str, shape: list[int], max_input_size: int
) -> np.ndarray:
    """One input given as JSON ``data``, flat, in the request's datatype."""
    count = math.prod(shape)
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise invalid(f"invalid datatype for input {in_name}")
    if dtype == np.dtype("<f2"):
        raise invalid(
            "receiving FP16 data via JSON is not supported. Please use the binary data "
            f"format for input {in_name}"
        )
    if count * dtype.itemsize > max_input_size:
        raise input_size_limit_error(
            f"JSON input '{in_name}'", count * dtype.itemsize, max_input_size
        )
    return json_tensor(data, dtype, count) if count else np.zeros(0, dtype)


def read_inputs(
    inputs: list[Any],
    body: bytes,
    hlen: int,
    header_length: int | None,
    max_input_size: int,
    model_name: str,
) -> dict[str, DecodedInput]:
    """Every input in request order; binary parts are taken from the body after the JSON
    in order, and bytes left over are an error."""
    offset = hlen
    decoded: dict[str, DecodedInput] = {}
    for item in inputs:
        name, datatype, shape, params = input_fields(item)
        if name in decoded:
            raise invalid(logged_request(f"input '{name}' already exists in request"))
        if "shared_memory_region" in params:
            raise invalid(
                f"Unable to find shared memory region: '{params.get('shared_memory_region')}'"
            )
        if "binary_data_size" in params:
            chunk = slice_binary(body, offset, params, header_length, name, model_name)
            offset += len(chunk)
            decoded[name] = DecodedInput(datatype, shape, None, chunk)
        else:
            arr = json_input(item["data"], name, datatype, shape, max_input_size)
            decoded[name] = DecodedInput(datatype, shape, arr, None)
    if offset != len(body):
        raise invalid(f"unexpected additional input data for model '{model_name}'")
    return decoded


# ----------------------------------------------------------------------------- outputs


def requested_outputs(
    doc: dict[str, Any], binary_default: bool, config_outputs: tuple[TensorConfig, ...]
) -> list[tuple[str, bool]]:
    """(name, binary) of each output to answer: those the request lists, else all the
    model's, binary where the request (or its ``binary_data_output``) asks."""
    if "outputs" not in doc:
        return [(o.name, binary_default) for o in config_outputs]
    req_outputs = doc["outputs"]
    if not isinstance(req_outputs, list):
        raise json_error("Unable to parse 'outputs': attempt to access JSON non-array")
    outputs: list[tuple[str, bool]] = []
    for out in req_outputs:
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise json_error("Unable to parse 'name': attempt to access JSON non-string as string")
        params = out.get("parameters", {})
        if not isinstance(params, dict):
            params = {}
        if params.get("classification"):
            raise TritonError(
                "UNSUPPORTED", "classification outputs are not supported by this server"
            )
        if any(o == out["name"] for o, _ in outputs):
            raise invalid(logged_request(f"output '{out['name']}' already exists in request"))
        outputs.append((out["name"], params.get("binary_data", binary_default) is True))
    return outputs


# ----------------------------------------------------------------------------- whole request


def parse_raw_request(
    config: ModelConfig, model_name: str, body: bytes, max_input_size: int
) -> ParsedRequest:
    """A raw binary request (``Inference-Header-Content-Length: 0``): the whole body is
    the only input, batch 1, and every output is answered in binary."""
    if len(body) > max_input_size:
        raise input_size_limit_error("Raw input", len(body), max_input_size)
    inp = config.inputs[0]
    shape = ([1] if config.max_batch_size > 0 else []) + list(inp.dims)
    decoded = DecodedInput(inp.datatype, shape, None, body)
    arr = input_array(decoded, config, inp.name, model_name)
    return ParsedRequest(arr, [(o.name, True) for o in config.outputs], None)


def parse_infer_request(
    model: ServedModel, body: bytes, header_length: int | None, max_input_size: int
) -> ParsedRequest:
    """Turn an infer request body into the model's input array, checking it as Triton's
    HTTP front end and core do (same order, same messages, same error codes)."""
    config, name = model.config, model.name
    if header_length == 0:
        return parse_raw_request(config, name, body, max_input_size)
    doc, hlen = split_header(body, header_length, max_input_size)
    request_id, binary_default, inputs = request_fields(doc)
    decoded = read_inputs(inputs, body, hlen, header_length, max_input_size, name)
    outputs = requested_outputs(doc, binary_default, config.outputs)
    arr = check_request(decoded, outputs, config, name)
    return ParsedRequest(arr, outputs, request_id)


# ----------------------------------------------------------------------------- response


def datatype_name(dtype: np.dtype) -> str:
    """The KServe v2 name of a numpy dtype (either byte order)."""
    for name, dt in DTYPES.items():
        if dt == dtype.newbyteorder("<") or dt == dtype:
            return name
    raise TritonError("INTERNAL", f"unsupported output dtype {dtype}")


def _output_entry(name: str, arr: np.ndarray, binary: bool, blobs: list[bytes]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "datatype": datatype_name(arr.dtype),
        "shape": list(arr.shape),
    }
    if binary:
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        entry["parameters"] = {"binary_data_size": len(raw)}
        blobs.append(raw)
    else:
        entry["data"] = arr.reshape(-1).tolist()
    return entry


def encode_infer_response(
    parsed: ParsedRequest, output: dict[str, np.ndarray], model_name: str, model_version: str
) -> tuple[bytes, bytes | None]:
    """The response's JSON header and its binary part (``None`` when every output is JSON;
    then the header is the whole body, else its length goes in the
    ``Inference-Header-Content-Length`` header and the binary part follows it)."""
    blobs: list[bytes] = []
    entries = [_output_entry(n, output[n], binary, blobs) for n, binary in parsed.outputs]
    resp: dict[str, Any] = {}
    if parsed.request_id is not None:
        resp["id"] = parsed.request_id
    resp.update({"model_name": model_name, "model_version": model_version})
    resp["outputs"] = entries
    head = json.dumps(resp, separators=(",", ":")).encode()
    return head, b"".join(blobs) if blobs else None
