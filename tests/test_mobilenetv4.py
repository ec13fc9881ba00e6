"""MobileNetV4-Conv-Small in plain PyTorch, its ONNX export and the model repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from k8s_gpu_rl.envs.backends.local.mobilenetv4 import MobileNetV4ConvSmall, count_parameters
from k8s_gpu_rl.envs.backends.local.model import (
    PbtxtError,
    ensure_onnx,
    parse_pbtxt,
    read_model_config,
    write_model_repository,
)

pytest_plugins = ["local_fixtures"]  # the onnx_model fixture

ROOT = Path(__file__).resolve().parents[1]
TIMM_PARAMS = 3_770_000  # timm's model card: 3.77 M parameters


def test_parameter_count_matches_timm() -> None:
    n = count_parameters(MobileNetV4ConvSmall())
    assert n == 3_774_024
    assert abs(n - TIMM_PARAMS) / TIMM_PARAMS < 0.01


def test_forward_shape_and_stage_resolutions() -> None:
    model = MobileNetV4ConvSmall().eval()
    x = torch.randn(2, 3, 224, 224)
    sizes = []
    with torch.no_grad():
        y = model.stem(x)
        for stage in model.stages:
            y = stage(y)
            sizes.append((y.shape[1], y.shape[2]))
        logits = model(x)
    assert sizes == [(32, 56), (64, 28), (96, 14), (128, 7), (960, 7)]
    assert logits.shape == (2, 1000)
    assert torch.isfinite(logits).all()


def test_onnx_has_dynamic_batch_axis_and_names(onnx_model: Path) -> None:
    graph = onnx.load(str(onnx_model)).graph
    assert [i.name for i in graph.input] == ["input0"]
    assert [o.name for o in graph.output] == ["output0"]
    in_dims = graph.input[0].type.tensor_type.shape.dim
    out_dims = graph.output[0].type.tensor_type.shape.dim
    assert in_dims[0].dim_param and not in_dims[0].HasField("dim_value")
    assert [d.dim_value for d in in_dims[1:]] == [3, 224, 224]
    assert out_dims[0].dim_param and [d.dim_value for d in out_dims[1:]] == [1000]


def test_onnxruntime_runs_batch_1_and_5_like_torch(onnx_model: Path) -> None:
    sess = ort.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((5, 3, 224, 224), dtype=np.float32)
    (y5,) = sess.run(None, {"input0": x})
    (y1,) = sess.run(None, {"input0": x[:1]})
    assert y5.shape == (5, 1000) and y1.shape == (1, 1000)
    np.testing.assert_allclose(y1[0], y5[0], rtol=1e-4, atol=1e-4 * np.abs(y5).max())
    # the same weights as the torch model built from the same seed
    torch.manual_seed(0)
    model = MobileNetV4ConvSmall().eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y5, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_ensure_onnx_caches_in_k8sgpurl_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, onnx_model: Path
) -> None:
    monkeypatch.setenv("K8SGPURL_CACHE", str(tmp_path))
    target = tmp_path / "models" / "mobilenetv4_conv_small.onnx"
    target.parent.mkdir(parents=True)
    target.write_bytes(onnx_model.read_bytes())  # pre-seeded cache: must not rebuild
    mtime = target.stat().st_mtime_ns
    assert ensure_onnx() == target
    assert target.stat().st_mtime_ns == mtime
    assert not list(target.parent.glob("*.tmp"))


def test_model_repository_layout_and_config_roundtrip(tmp_path: Path, onnx_model: Path) -> None:
    model_dir = write_model_repository(
        tmp_path, onnx_model, max_batch_size=8, max_queue_delay_us=500, preferred_batch_sizes=[4, 8]
    )
    assert model_dir == tmp_path / "mobilenetv4"
    assert (model_dir / "1" / "model.onnx").read_bytes() == onnx_model.read_bytes()
    text = (model_dir / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in text and "kind: KIND_GPU" in text
    cfg = read_model_config(tmp_path, "mobilenetv4")
    assert cfg.max_batch_size == 8
    assert cfg.preferred_batch_sizes == (4, 8) and cfg.max_queue_delay_us == 500
    assert [(i.name, i.datatype, i.dims) for i in cfg.inputs] == [("input0", "FP32", (3, 224, 224))]
    assert [(o.name, o.dims) for o in cfg.outputs] == [("output0", (1000,))]
    assert cfg.instance_groups == ({"count": 1, "kind": "KIND_GPU"},)
    with pytest.raises(ValueError, match="preferred"):
        write_model_repository(tmp_path, onnx_model, max_batch_size=4, preferred_batch_sizes=[8])


def test_pbtxt_reader_handles_triton_syntax() -> None:
    text = """
    # a comment
    name: "m"  platform: "onnxruntime_onnx"
    max_batch_size: 16
    input: [ { name: "a", data_type: TYPE_FP32, dims: [ 3, -1 ] }, { name: "b" dims: 4 } ]
    dynamic_batching { preferred_batch_size: 4 preferred_batch_size: 8 }
    instance_group [ { count: 2 kind: KIND_CPU } ]
    """
    msg = parse_pbtxt(text)
    assert msg["max_batch_size"] == [16]
    assert msg["input"][0]["dims"] == [3, -1] and msg["input"][1]["dims"] == [4]
    assert msg["dynamic_batching"][0]["preferred_batch_size"] == [4, 8]
    assert msg["instance_group"][0]["kind"] == ["KIND_CPU"]
    with pytest.raises(PbtxtError, match="missing '}'"):
        parse_pbtxt("input [ { name: 'x' ")


def test_export_cli_prints_figures_and_rejects_bad_values(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "export_mobilenetv4.py"
    ok = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--repo", "--repeats", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert "parameters: 3,774,024" in ok.stdout
    for batch in (1, 4, 8):
        assert f"batch {batch}:" in ok.stdout
    assert (tmp_path / "model_repository" / "mobilenetv4" / "1" / "model.onnx").is_file()
    for bad, word in (
        (["--seed", "abc"], "--seed"),
        (["--max-batch-size", "0"], "--max-batch-size"),
        (["--preferred-batch-sizes", "4,16"], "--preferred-batch-sizes"),
    ):
        res = subprocess.run(
            [sys.executable, str(script), "--out", str(tmp_path / "x"), *bad],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 2
        assert word in res.stderr and "Traceback" not in res.stderr
