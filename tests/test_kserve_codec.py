"""The local server's KServe v2 codec, one small function at a time, on hand-written request
bytes: the framing (lengths, JSON/binary split), each input's fields and data, the outputs,
the core's checks against the model config, and the response.

Expected texts and codes are Triton's (``src/http_server.cc``, core ``infer_request.cc``):
TritonJson errors are INTERNAL (500), the request's own mistakes INVALID_ARG (400), and the
core prefixes its messages with ``[request id: <id_unknown>]``. tests/test_inference_server.py
checks the same messages end to end against the running server.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from k8s_gpu_rl.envs.backends.local.model import ModelConfig, TensorConfig
from k8s_gpu_rl.envs.backends.local.server import ServedModel, TritonError
from k8s_gpu_rl.envs.backends.local.server.checks import (
    DecodedInput,
    check_batch,
    check_datatype,
    check_dims,
    check_input_names,
    check_output_names,
    input_array,
)
from k8s_gpu_rl.envs.backends.local.server.codec import (
    ParsedRequest,
    datatype_name,
    encode_infer_response,
    input_fields,
    json_input,
    json_tensor,
    parse_infer_request,
    parse_raw_request,
    read_inputs,
    request_fields,
    requested_outputs,
    slice_binary,
)
from k8s_gpu_rl.envs.backends.local.server.framing import (
    oversized_body_error,
    parse_content_length,
    parse_header_length,
    split_header,
)

LIMIT_HINT = "Use --http-max-input-size to increase the limit."
REQ = "[request id: <id_unknown>] "
ONE_OF = (
    "Input must set only one of the following fields: 'data', 'binary_data_size' in "
    "'parameters', 'shared_memory_region' in 'parameters'. But"
)

# A model "m": input0 FP32 [3, 2] with max_batch_size 4, one output "output0" FP32 [2].
CONFIG = ModelConfig(
    name="m",
    platform="onnxruntime_onnx",
    max_batch_size=4,
    inputs=(TensorConfig("input0", "TYPE_FP32", (3, 2)),),
    outputs=(TensorConfig("output0", "TYPE_FP32", (2,)),),
    dynamic_batching=False,
)
UNBATCHED = ModelConfig(
    name="m",
    platform="onnxruntime_onnx",
    max_batch_size=0,
    inputs=(TensorConfig("input0", "TYPE_FP32", (2, 3)),),
    outputs=(TensorConfig("output0", "TYPE_FP32", (2,)),),
    dynamic_batching=False,
)
ONES = struct.pack("<6f", 1, 2, 3, 4, 5, 6)  # 24 bytes: one [1, 3, 2] FP32 tensor


@contextlib.contextmanager
def _raises(code: str, status: int, text: str) -> Iterator[None]:
    """A TritonError with this code and HTTP status whose message contains ``text``."""
    with pytest.raises(TritonError, match=re.escape(text)) as info:
        yield
    assert (info.value.code, info.value.status) == (code, status), info.value.message


# ----------------------------------------------------------------------------- framing


def test_content_length_parses_like_http_server_cc() -> None:
    assert parse_content_length(None) == 0
    assert parse_content_length(" 24 ") == 24
    with _raises("INVALID_ARG", 400, "Unable to parse Content-Length, got: ten"):
        parse_content_length("ten")
    with _raises("INVALID_ARG", 400, "Unable to parse Content-Length, got: -4"):
        parse_content_length("-4")
    with _raises(
        "INVALID_ARG",
        400,
        "Unable to parse Content-Length, value is out of range [ -2147483648, 2147483647 ], "
        "got: 2147483648",
    ):
        parse_content_length("2147483648")


def test_header_length_absent_zero_or_within_the_body() -> None:
    assert parse_header_length(None, 100) is None  # the whole body is JSON
    assert parse_header_length("0", 100) == 0  # a raw binary request
    assert parse_header_length("100", 100) == 100
    with _raises("INVALID_ARG", 400, "inference header size should be in range (0, 100), got: 101"):
        parse_header_length("101", 100)
    with _raises("INVALID_ARG", 400, "inference header size should be in range (0, 100), got: -1"):
        parse_header_length("-1", 100)
    with _raises("INVALID_ARG", 400, "Unable to parse Inference-Header-Content-Length, got: ten"):
        parse_header_length("ten", 100)
    with _raises("INVALID_ARG", 400, "value is out of range [ -2147483648, 2147483647 ]"):
        parse_header_length("-2147483649", 100)


@pytest.mark.parametrize(
    ("header", "text"),
    [
        ("100", "request body size of 9437184 bytes exceeds the maximum allowed input size"),
        (None, "request JSON size of 9437184 bytes exceeds the maximum allowed input size"),
        ("9437179", "request JSON size of 9437179 bytes exceeds the maximum allowed input size"),
        ("0", "Raw input has a byte_size (9437184 bytes) that exceeds the maximum allowed value"),
        ("ten", "request JSON size of 9437184 bytes"),  # an unparseable header: all JSON
    ],
    ids=["binary-part-too-big", "json-body", "json-part", "raw", "bad-header"],
)
def test_oversized_body_names_what_is_too_big(header: str | None, text: str) -> None:
    err = oversized_body_error(9 * 2**20, header, 8 * 2**20)
    assert (err.code, err.status) == ("INVALID_ARG", 400)
    assert text in err.message and "8388608 bytes" in err.message
    assert err.message.endswith(LIMIT_HINT)


def test_split_header_takes_the_json_part_only() -> None:
    head = b'{"inputs":[]}'
    doc, hlen = split_header(head + b"\x00\x01\x02", len(head), 1 << 26)
    assert (doc, hlen) == ({"inputs": []}, 13)
    assert split_header(head, None, 1 << 26) == ({"inputs": []}, 13)
    with _raises("INVALID_ARG", 400, "request JSON size of 13 bytes exceeds the maximum allowed "):
        split_header(head, None, 12)
    with _raises("INTERNAL", 500, "failed to parse the request JSON buffer: "):
        split_header(b'{"inputs": [', None, 1 << 26)
    with _raises("INTERNAL", 500, "failed to parse the request JSON buffer: "):
        split_header(b"\xff\xfe", None, 1 << 26)
    with _raises("INTERNAL", 500, "Unable to parse 'inputs': attempt to access JSON non-object"):
        split_header(b"[1]", None, 1 << 26)


def test_request_fields_id_parameters_inputs() -> None:
    doc = {"id": "r1", "parameters": {"binary_data_output": True}, "inputs": [{}]}
    assert request_fields(doc) == ("r1", True, [{}])
    # only JSON true turns binary output on
    assert request_fields({"parameters": {"binary_data_output": 1}, "inputs": []}) == (
        None,
        False,
        [],
    )
    with _raises("INTERNAL", 500, "Unable to parse 'inputs': attempt to access JSON non-array"):
        request_fields({})
    with _raises("INTERNAL", 500, "Unable to parse 'id': attempt to access JSON non-string"):
        request_fields({"id": 7, "inputs": []})
    with _raises(
        "INTERNAL", 500, "Unable to parse 'parameters': attempt to access JSON non-object"
    ):
        request_fields({"parameters": [1], "inputs": []})


# ----------------------------------------------------------------------------- one input


def test_input_fields_reads_name_datatype_shape_parameters() -> None:
    item = {
        "name": "x",
        "datatype": "FP32",
        "shape": [1, 3],
        "parameters": {"binary_data_size": 12},
    }
    assert input_fields(item) == ("x", "FP32", [1, 3], {"binary_data_size": 12})
    item = {"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2], "parameters": "p"}
    assert input_fields(item) == ("x", "FP32", [2], {})  # a non-object is no parameters


@pytest.mark.parametrize(
    ("item", "code", "text"),
    [
        (
            {"name": "x", "datatype": "FP32", "shape": [1]},
            "INVALID_ARG",
            ONE_OF + " no field is set",
        ),
        (
            {"name": "x", "shape": [1], "data": [1], "parameters": {"binary_data_size": 4}},
            "INVALID_ARG",
            ONE_OF + " set 'data' 'binary_data_size'",
        ),
        ({"name": 3, "datatype": "FP32", "shape": [1], "data": [1]}, "INTERNAL", "'name'"),
        ({"name": "x", "shape": [1], "data": [1]}, "INTERNAL", "'datatype'"),
        ({"name": "x", "datatype": "FP32", "shape": 1, "data": [1]}, "INTERNAL", "'shape'"),
        (
            {"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]},
            "INTERNAL",
            "Unable to parse 'shape': attempt to access JSON non-unsigned-integer as unsigned-integer",
        ),
        ({"name": "x", "datatype": "FP32", "shape": [True], "data": [1]}, "INTERNAL", "'shape'"),
        ("input0", "INTERNAL", "attempt to access JSON non-object as object"),
    ],
    ids=["no-data", "two-kinds", "name", "datatype", "shape", "negative-dim", "bool-dim", "item"],
)
def test_input_fields_refuses(item: object, code: str, text: str) -> None:
    with _raises(code, {"INVALID_ARG": 400, "INTERNAL": 500}[code], text):
        input_fields(item)


def test_checks_run_in_tritons_order_name_before_datatype() -> None:
    # both 'name' and 'datatype' are missing: the name is read (and refused) first
    with _raises("INTERNAL", 500, "Unable to parse 'name'"):
        input_fields({"shape": [1], "data": [1]})


def test_slice_binary_takes_its_bytes_after_the_offset() -> None:
    body = b"HEAD" + b"\x01" * 8 + b"\x02" * 4
    assert slice_binary(body, 4, {"binary_data_size": 8}, 4, "x", "m") == b"\x01" * 8
    assert slice_binary(body, 12, {"binary_data_size": 4}, 4, "x", "m") == b"\x02" * 4
    with _raises(
        "INVALID_ARG",
        400,
        "unexpected size for input 'x', expecting 2 additional bytes for model 'm'",
    ):
        slice_binary(body, 12, {"binary_data_size": 6}, 4, "x", "m")
    with _raises("INVALID_ARG", 400, "must specify valid 'Infer-Header-Content-Length'"):
        slice_binary(body, 4, {"binary_data_size": 8}, None, "x", "m")
    assert slice_binary(body, 4, {"binary_data_size": 0}, None, "x", "m") == b""
    with _raises("INTERNAL", 500, "Unable to parse 'binary_data_size': attempt to access JSON"):
        slice_binary(body, 4, {"binary_data_size": "8"}, 4, "x", "m")


def test_json_tensor_flat_or_nested_with_the_exact_count() -> None:
    got = json_tensor([[1, 2], [3, 4.5]], np.dtype("<f4"), 4)
    assert got.dtype == np.float32 and got.tolist() == [1.0, 2.0, 3.0, 4.5]
    assert json_tensor([True, False], np.dtype("?"), 2).tolist() == [True, False]
    with _raises("INTERNAL", 500, "Failed to parse 'data' field: shape does not match true shape"):
        json_tensor([1, 2, 3], np.dtype("<f4"), 4)
    with _raises(
        "INTERNAL", 500, "Unable to parse 'data': Shape does not match true shape of 'data' field"
    ):
        json_tensor([1, 2, 3, 4, 5], np.dtype("<f4"), 4)
    with _raises("INTERNAL", 500, "Unable to parse 'data': attempt to access JSON non-array"):
        json_tensor("1234", np.dtype("<f4"), 4)
    for bad in ([1, "a"], [1, [2, "b"]]):
        with _raises("INTERNAL", 500, "Unable to parse 'data': attempt to access JSON non-number"):
            json_tensor(bad, np.dtype("<f4"), 2)


def test_json_input_datatypes_and_size_limit() -> None:
    assert json_input([7, 8], "x", "INT64", [1, 2], 1 << 26).tolist() == [7, 8]
    assert json_input("ignored", "x", "FP32", [0, 2], 1 << 26).size == 0  # nothing to read
    with _raises("INVALID_ARG", 400, "invalid datatype for input x"):
        json_input([1], "x", "FLOAT", [1], 1 << 26)
    with _raises("INVALID_ARG", 400, "receiving FP16 data via JSON is not supported"):
        json_input([1], "x", "FP16", [1], 1 << 26)
    with _raises(
        "INVALID_ARG",
        400,
        f"JSON input 'x' has a byte_size (16 bytes) that exceeds the maximum allowed value of "
        f"8 bytes. {LIMIT_HINT}",
    ):
        json_input([1, 2, 3, 4], "x", "FP32", [4], 8)


def _binary_item(name: str, size: int) -> dict[str, object]:
    return {
        "name": name,
        "datatype": "FP32",
        "shape": [1, 3, 2],
        "parameters": {"binary_data_size": size},
    }


def test_read_inputs_slices_binary_parts_in_order_and_refuses_leftovers() -> None:
    head = b"{}"  # read_inputs only needs the JSON's length
    second = struct.pack("<6f", *range(6))
    body = head + ONES + second
    items = [_binary_item("a", 24), _binary_item("b", 24)]
    got = read_inputs(items, body, 2, 2, 1 << 26, "m")
    assert list(got) == ["a", "b"]
    assert (got["a"].raw, got["b"].raw) == (ONES, second)
    assert got["a"] == DecodedInput("FP32", [1, 3, 2], None, ONES)
    with _raises("INVALID_ARG", 400, "unexpected additional input data for model 'm'"):
        read_inputs(items[:1], body, 2, 2, 1 << 26, "m")
    with _raises("INVALID_ARG", 400, REQ + "input 'a' already exists in request"):
        read_inputs([items[0], _binary_item("a", 24)], body, 2, 2, 1 << 26, "m")
    shm = {
        "name": "a",
        "datatype": "FP32",
        "shape": [1],
        "parameters": {"shared_memory_region": "r"},
    }
    with _raises("INVALID_ARG", 400, "Unable to find shared memory region: 'r'"):
        read_inputs([shm], head, 2, 2, 1 << 26, "m")
    json_item = {"name": "a", "datatype": "FP32", "shape": [1, 2], "data": [[1, 2]]}
    got = read_inputs([json_item], b'{"x":1}', 7, None, 1 << 26, "m")
    assert got["a"].raw is None and got["a"].array.tolist() == [1.0, 2.0]


# ----------------------------------------------------------------------------- outputs


def test_requested_outputs_default_listed_and_binary_flags() -> None:
    assert requested_outputs({}, False, CONFIG.outputs) == [("output0", False)]
    assert requested_outputs({}, True, CONFIG.outputs) == [("output0", True)]
    doc = {"outputs": [{"name": "p", "parameters": {"binary_data": True}}, {"name": "q"}]}
    assert requested_outputs(doc, False, CONFIG.outputs) == [("p", True), ("q", False)]
    doc = {"outputs": [{"name": "p", "parameters": {"binary_data": False}}, {"name": "q"}]}
    assert requested_outputs(doc, True, CONFIG.outputs) == [("p", False), ("q", True)]
    doc = {"outputs": [{"name": "p", "parameters": {"binary_data": 1}}]}  # not JSON true
    assert requested_outputs(doc, True, CONFIG.outputs) == [("p", False)]
    with _raises("INVALID_ARG", 400, REQ + "output 'p' already exists in request"):
        requested_outputs({"outputs": [{"name": "p"}, {"name": "p"}]}, False, CONFIG.outputs)
    with _raises("UNSUPPORTED", 501, "classification outputs are not supported"):
        requested_outputs(
            {"outputs": [{"name": "p", "parameters": {"classification": 3}}]}, False, CONFIG.outputs
        )
    with _raises("INTERNAL", 500, "Unable to parse 'outputs': attempt to access JSON non-array"):
        requested_outputs({"outputs": {"name": "p"}}, False, CONFIG.outputs)
    with _raises("INTERNAL", 500, "Unable to parse 'name': attempt to access JSON non-string"):
        requested_outputs({"outputs": [{"name": 5}]}, False, CONFIG.outputs)


# ----------------------------------------------------------------------------- core checks


def test_input_count_and_names_against_the_config() -> None:
    one = DecodedInput("FP32", [1, 3, 2], None, ONES)
    assert check_input_names({"input0": one}, CONFIG, "m") == "input0"
    with _raises(
        "INVALID_ARG",
        400,
        REQ + "expected 1 inputs but got 0 inputs for model 'm'. Got input(s) [], but missing "
        "required input(s) ['input0']. Please provide all required input(s).",
    ):
        check_input_names({}, CONFIG, "m")
    with _raises(
        "INVALID_ARG",
        400,
        "expected 1 inputs but got 2 inputs for model 'm'. Got input(s) ['input0','b'], "
        "but missing required input(s) []",
    ):
        check_input_names({"input0": one, "b": one}, CONFIG, "m")
    with _raises("INVALID_ARG", 400, "unexpected inference input 'images' for model 'm'"):
        check_input_names({"images": one}, CONFIG, "m")
    check_output_names([("output0", True)], CONFIG, "m")
    with _raises("INVALID_ARG", 400, "unexpected inference output 'probs' for model 'm'"):
        check_output_names([("output0", True), ("probs", False)], CONFIG, "m")


def test_batch_dimension_between_one_and_max_batch_size() -> None:
    assert check_batch([4, 3, 2], CONFIG, "input0", "m") == [3, 2]
    assert check_batch([3, 2], UNBATCHED, "input0", "m") == [3, 2]  # no batch dimension
    with _raises("INVALID_ARG", 400, REQ + "inference request batch-size must be <= 4 for 'm'"):
        check_batch([5, 3, 2], CONFIG, "input0", "m")
    with _raises("INVALID_ARG", 400, REQ + "inference request batch-size must be >= 1 for 'm'"):
        check_batch([0, 3, 2], CONFIG, "input0", "m")
    with _raises(
        "INVALID_ARG", 400, REQ + "input 'input0' has no shape but model requires batch dimension"
    ):
        check_batch([], CONFIG, "input0", "m")


def test_datatype_and_dims_against_the_config() -> None:
    check_datatype("FP32", CONFIG, "input0", "m")
    with _raises(
        "INVALID_ARG",
        400,
        REQ + "inference input 'input0' data-type is 'INT32', but model 'm' expects 'FP32'",
    ):
        check_datatype("INT32", CONFIG, "input0", "m")
    check_dims([3, 2], [1, 3, 2], CONFIG, "input0", "m")
    with _raises(
        "INVALID_ARG",
        400,
        REQ + "unexpected shape for input 'input0' for model 'm'. Expected [-1,3,2], got [1,3]. "
        "NOTE: Setting a non-zero max_batch_size",
    ):
        check_dims([3], [1, 3], CONFIG, "input0", "m")
    with pytest.raises(TritonError) as info:
        check_dims([3, 2], [3, 2], UNBATCHED, "input0", "m")
    # no note without a batch dimension: the message ends after "got [3,2]. "
    assert info.value.message.endswith("Expected [2,3], got [3,2]. ")


def test_input_array_checks_the_binary_byte_size() -> None:
    arr = input_array(DecodedInput("FP32", [1, 3, 2], None, ONES), CONFIG, "input0", "m")
    assert arr.shape == (1, 3, 2) and arr.tolist() == [[[1, 2], [3, 4], [5, 6]]]
    flat = np.arange(6, dtype=np.float32)
    arr = input_array(DecodedInput("FP32", [1, 3, 2], flat, None), CONFIG, "input0", "m")
    assert arr.shape == (1, 3, 2)
    with _raises(
        "INVALID_ARG",
        400,
        REQ + "input byte size mismatch for input 'input0' for model 'm'. Expected 24, got 20",
    ):
        input_array(DecodedInput("FP32", [1, 3, 2], None, ONES[:20]), CONFIG, "input0", "m")


# ----------------------------------------------------------------------------- whole request


def test_raw_request_is_one_batch_one_input_all_outputs_binary() -> None:
    got = parse_raw_request(CONFIG, "m", ONES, 1 << 26)
    assert got.array.shape == (1, 3, 2) and got.array[0, 2, 1] == 6.0
    assert (got.outputs, got.request_id) == ([("output0", True)], None)
    with _raises(
        "INVALID_ARG",
        400,
        "Raw input has a byte_size (24 bytes) that exceeds the maximum allowed value of 23 bytes",
    ):
        parse_raw_request(CONFIG, "m", ONES, 23)
    with _raises(
        "INVALID_ARG",
        400,
        REQ + "input byte size mismatch for input 'input0' for model 'm'. Expected 24, got 12",
    ):
        parse_raw_request(CONFIG, "m", ONES[:12], 1 << 26)


@pytest.fixture
def served(tmp_path: Path) -> ServedModel:
    """A real ServedModel (not loaded: parsing needs only its name and config)."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text(
        'name: "m"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 4\n'
        'input [ { name: "input0" data_type: TYPE_FP32 dims: [ 3, 2 ] } ]\n'
        'output [ { name: "output0" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
    )
    return ServedModel(tmp_path, "m", threads=1, share=1.0, pod="test")


def _request(**doc: object) -> tuple[bytes, int]:
    inputs = doc.pop("inputs", [_binary_item("input0", 24)])
    head = json.dumps({"inputs": inputs, **doc}).encode()
    return head + ONES, len(head)


def test_parse_infer_request_binary_input_json_output(served: ServedModel) -> None:
    body, hlen = _request(id="r7", outputs=[{"name": "output0"}])
    got = parse_infer_request(served, body, hlen, 1 << 26)
    assert got.array.shape == (1, 3, 2) and got.array.reshape(-1).tolist() == [1, 2, 3, 4, 5, 6]
    assert (got.outputs, got.request_id) == ([("output0", False)], "r7")
    raw = parse_infer_request(served, ONES, 0, 1 << 26)
    assert raw.outputs == [("output0", True)]


def test_parse_infer_request_keeps_the_cores_order(served: ServedModel) -> None:
    # an unknown output is refused before the input's shape is looked at
    item = {
        "name": "input0",
        "datatype": "FP32",
        "shape": [1, 3],
        "parameters": {"binary_data_size": 24},
    }
    body, hlen = _request(inputs=[item], outputs=[{"name": "probs"}])
    with _raises("INVALID_ARG", 400, "unexpected inference output 'probs'"):
        parse_infer_request(served, body, hlen, 1 << 26)
    # the batch size before the datatype, the datatype before the shape
    item = {
        "name": "input0",
        "datatype": "INT32",
        "shape": [5, 3],
        "parameters": {"binary_data_size": 24},
    }
    body, hlen = _request(inputs=[item])
    with _raises("INVALID_ARG", 400, "batch-size must be <= 4"):
        parse_infer_request(served, body, hlen, 1 << 26)
    item["shape"] = [1, 3]
    body, hlen = _request(inputs=[item])
    with _raises("INVALID_ARG", 400, "data-type is 'INT32'"):
        parse_infer_request(served, body, hlen, 1 << 26)
    # leftover bytes are found while reading the inputs, before any core check
    item = {
        "name": "images",
        "datatype": "FP32",
        "shape": [1, 3, 2],
        "parameters": {"binary_data_size": 20},
    }
    body, hlen = _request(inputs=[item])
    with _raises("INVALID_ARG", 400, "unexpected additional input data for model 'm'"):
        parse_infer_request(served, body, hlen, 1 << 26)


# ----------------------------------------------------------------------------- response


def test_response_binary_output_header_and_bytes() -> None:
    out = np.array([[1.5, -2.0]], dtype=np.float32)
    parsed = ParsedRequest(np.zeros((1, 3, 2), np.float32), [("output0", True)], None)
    head, blob = encode_infer_response(parsed, {"output0": out}, "m", "1")
    assert head == (
        b'{"model_name":"m","model_version":"1","outputs":[{"name":"output0","datatype":"FP32",'
        b'"shape":[1,2],"parameters":{"binary_data_size":8}}]}'
    )
    assert blob == struct.pack("<2f", 1.5, -2.0)


def test_response_json_output_with_the_request_id() -> None:
    out = np.array([[1.5, -2.0]], dtype=">f4")  # big-endian in, plain numbers out
    parsed = ParsedRequest(np.zeros((1, 3, 2), np.float32), [("output0", False)], "r7")
    head, blob = encode_infer_response(parsed, {"output0": out}, "m", "1")
    assert blob is None
    assert json.loads(head) == {
        "id": "r7",
        "model_name": "m",
        "model_version": "1",
        "outputs": [{"name": "output0", "datatype": "FP32", "shape": [1, 2], "data": [1.5, -2.0]}],
    }


def test_datatype_names() -> None:
    assert [datatype_name(np.dtype(d)) for d in ("<f4", ">f4", "<i8", "?", "<f2", "u1")] == [
        "FP32",
        "FP32",
        "INT64",
        "BOOL",
        "FP16",
        "UINT8",
    ]
    with _raises("INTERNAL", 500, "unsupported output dtype"):
        datatype_name(np.dtype("complex64"))
