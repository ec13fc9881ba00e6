"""The served model as a file: ONNX export, the local cache, and Triton's model repository.

* :func:`export_onnx` writes MobileNetV4-Conv-Small (random weights from a seed: the testbed
  measures latency, not accuracy, and nothing is downloaded) with a dynamic batch axis, input
  ``input0`` ``[N, 3, 224, 224]`` FP32 and output ``output0`` ``[N, 1000]`` FP32 — the names the
  locustfile sends (``loadprofiles/locustfile.py``).
* :func:`ensure_onnx` returns a cached export, building it once
  (``$K8SGPURL_CACHE/models/`` or ``~/.cache/k8s-gpu-rl/models/``).
* :func:`write_model_repository` lays the file out as Triton does:
  ``<repo>/mobilenetv4/config.pbtxt`` and ``<repo>/mobilenetv4/1/model.onnx``.
* :func:`read_model_config` reads back the fields the local server needs from a
  ``config.pbtxt`` (a small parser for protobuf text format, enough for model configs).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k8s_gpu_rl.io import atomic_write, write_bytes, write_text

MODEL_NAME = "mobilenetv4"
"""The model's name in the repository (and in Triton's metric labels)."""
INPUT_NAME = "input0"
OUTPUT_NAME = "output0"
INPUT_DIMS = (3, 224, 224)
"""Input dims without the batch dimension."""

NUM_CLASSES = 1000
ONNX_FILENAME = "mobilenetv4_conv_small.onnx"


# ----------------------------------------------------------------------------- export


def export_onnx(path: str | os.PathLike[str], seed: int = 0, opset: int = 17) -> Path:
    """Export MobileNetV4-Conv-Small with random weights (``seed``) to ``path``.

    The batch axis is dynamic (``input0[N,3,224,224] -> output0[N,1000]``). Uses the
    TorchScript exporter (``dynamo=False``: the dynamo exporter needs onnxscript). The
    file is written atomically. Returns the path.
    """
    import torch

    from k8s_gpu_rl.envs.backends.local.mobilenetv4 import MobileNetV4ConvSmall

    if not 7 <= opset <= 21:
        raise ValueError(f"opset must be in 7..21, got {opset}")
    path = Path(path)
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = MobileNetV4ConvSmall(NUM_CLASSES).eval()
    finally:
        torch.random.set_rng_state(gen_state)
    dummy = torch.zeros(1, *INPUT_DIMS)

    def write(tmp: Path) -> None:
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                model,
                (dummy,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )

    atomic_write(path, write)
    return path


def cache_dir() -> Path:
    """``$K8SGPURL_CACHE/models`` if set, else ``~/.cache/k8s-gpu-rl/models``."""
    root = os.environ.get("K8SGPURL_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "k8s-gpu-rl"
    return base / "models"


def ensure_onnx(path: str | os.PathLike[str] | None = None) -> Path:
    """The ONNX file at ``path`` (default: the cache), exported once (seed 0) if missing."""
    target = Path(path) if path is not None else cache_dir() / ONNX_FILENAME
    if not target.is_file() or target.stat().st_size == 0:
        export_onnx(target)
    return target


# ----------------------------------------------------------------------------- repository


def write_model_repository(
    repo_dir: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    max_batch_size: int = 8,
    max_queue_delay_us: int = 0,
    preferred_batch_sizes: tuple[int, ...] | list[int] = (),
    instance_count: int = 1,
    instance_kind: str = "KIND_GPU",
    model_name: str = MODEL_NAME,
) -> Path:
    """Write ``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/1/model.onnx``.

    The layout and config are what a real Triton loads (``platform: "onnxruntime_onnx"``,
    dynamic batching, one instance group; ``KIND_GPU`` as on the user's cluster). The
    ONNX file is copied. Returns the model directory.
    """
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    if max_queue_delay_us < 0:
        raise ValueError(f"max_queue_delay_us must be >= 0, got {max_queue_delay_us}")
    preferred = [int(b) for b in preferred_batch_sizes]
    bad = [b for b in preferred if not 1 <= b <= max_batch_size]
    if bad:
        raise ValueError(f"preferred batch sizes {bad} are outside 1..{max_batch_size}")
    if instance_count < 1:
        raise ValueError(f"instance_count must be >= 1, got {instance_count}")
    if instance_kind not in ("KIND_GPU", "KIND_CPU", "KIND_AUTO"):
        raise ValueError(f"instance_kind must be KIND_GPU, KIND_CPU or KIND_AUTO: {instance_kind}")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"no ONNX file at {onnx_path}")

    model_dir = Path(repo_dir) / model_name
    batching = ["dynamic_batching {"]
    if preferred:
        batching.append(f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]")
    batching.append(f"  max_queue_delay_microseconds: {max_queue_delay_us}")
    batching.append("}")
    dims = ", ".join(map(str, INPUT_DIMS))
    config = "\n".join(
        [
            f'name: "{model_name}"',
            'platform: "onnxruntime_onnx"',
            f"max_batch_size: {max_batch_size}",
            "input [",
            "  {",
            f'    name: "{INPUT_NAME}"',
            "    data_type: TYPE_FP32",
            f"    dims: [ {dims} ]",
            "  }",
            "]",
            "output [",
            "  {",
            f'    name: "{OUTPUT_NAME}"',
            "    data_type: TYPE_FP32",
            f"    dims: [ {NUM_CLASSES} ]",
            "  }",
            "]",
            *batching,
            "instance_group [",
            "  {",
            f"    count: {instance_count}",
            f"    kind: {instance_kind}",
            "  }",
            "]",
            "",
        ]
    )
    data = onnx_path.read_bytes()
    write_bytes(model_dir / "1" / "model.onnx", data)
    write_text(model_dir / "config.pbtxt", config)
    return model_dir


# ----------------------------------------------------------------------------- pbtxt reader

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*) |
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*') |
        (?P<punct>[{}\[\]:,;<>]) |
        (?P<word>[^\s{}\[\]:,;<>"'\#]+)
    )""",
    re.VERBOSE,
)


class PbtxtError(ValueError):
    """A ``config.pbtxt`` this reader cannot parse."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise PbtxtError(f"unexpected character at offset {pos}: {text[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind != "comment":
            out.append((kind, m.group(kind)))
    return out


def _scalar(kind: str, tok: str) -> Any:
    if kind == "string":
        body = tok[1:-1]
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    if tok in ("true", "True"):
        return True
    if tok in ("false", "False"):
        return False
    try:
        return int(tok, 0)
    except ValueError:
        pass
    try:
        return float(tok)
    except ValueError:
        return tok  # an enum identifier such as TYPE_FP32 or KIND_GPU


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise PbtxtError("unexpected end of input")
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        kind, tok = self.take()
        if tok != value or kind != "punct":
            raise PbtxtError(f"expected {value!r}, got {tok!r}")

    def message(self, closing: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            tok = self.peek()
            if tok is None:
                if closing is not None:
                    raise PbtxtError(f"missing {closing!r}")
                return out
            if tok[0] == "punct" and tok[1] == closing:
                self.i += 1
                return out
            if tok[0] == "punct" and tok[1] in ",;":
                self.i += 1
                continue
            kind, name = self.take()
            if kind != "word":
                raise PbtxtError(f"expected a field name, got {name!r}")
            nxt = self.peek()
            if nxt is not None and nxt[1] == ":":
                self.i += 1
            values = self.value()
            out.setdefault(name, []).extend(values)

    def value(self) -> list[Any]:
        kind, tok = self.take()
        if kind == "punct" and tok in "{<":
            return [self.message("}" if tok == "{" else ">")]
        if kind == "punct" and tok == "[":
            items: list[Any] = []
            while True:
                nxt = self.peek()
                if nxt is None:
                    raise PbtxtError("missing ']'")
                if nxt[1] == "]":
                    self.i += 1
                    return items
                if nxt[1] == ",":
                    self.i += 1
                    continue
                items.extend(self.value())
        if kind == "punct":
            raise PbtxtError(f"unexpected {tok!r}")
        return [_scalar(kind, tok)]


def parse_pbtxt(text: str) -> dict[str, list[Any]]:
    """Parse protobuf text format into ``{field: [values...]}`` (every field a list;
    nested messages are dicts of the same form)."""
    return _Parser(text).message(None)


@dataclass(frozen=True)
class TensorConfig:
    name: str
    data_type: str
    """Triton's config type, e.g. ``TYPE_FP32``."""
    dims: tuple[int, ...]
    """Without the batch dimension when ``max_batch_size > 0``."""

    @property
    def datatype(self) -> str:
        """The KServe v2 datatype name (``TYPE_FP32`` -> ``FP32``, ``TYPE_STRING`` -> ``BYTES``)."""
        short = self.data_type.removeprefix("TYPE_")
        return "BYTES" if short == "STRING" else short


@dataclass(frozen=True)
class ModelConfig:
    """The fields of a Triton ``config.pbtxt`` that the local server uses."""

    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    dynamic_batching: bool
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    instance_groups: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The config as Triton's ``GET /v2/models/<m>/config`` renders it (subset)."""

        def io(t: TensorConfig) -> dict[str, Any]:
            return {"name": t.name, "data_type": t.data_type, "dims": list(t.dims)}

        out: dict[str, Any] = {
            "name": self.name,
            "platform": self.platform,
            "backend": "onnxruntime" if self.platform == "onnxruntime_onnx" else "",
            "max_batch_size": self.max_batch_size,
            "input": [io(t) for t in self.inputs],
            "output": [io(t) for t in self.outputs],
            "instance_group": [dict(g) for g in self.instance_groups],
        }
        if self.dynamic_batching:
            out["dynamic_batching"] = {
                "preferred_batch_size": list(self.preferred_batch_sizes),
                "max_queue_delay_microseconds": self.max_queue_delay_us,
            }
        return out


def _one(msg: dict[str, list[Any]], key: str, default: Any) -> Any:
    values = msg.get(key)
    return values[-1] if values else default


def _tensor(msg: Any, where: str) -> TensorConfig:
    if not isinstance(msg, dict):
        raise PbtxtError(f"{where} must be a message")
    name = _one(msg, "name", None)
    if not isinstance(name, str) or not name:
        raise PbtxtError(f"{where} has no name")
    dims = tuple(int(d) for d in msg.get("dims", []))
    return TensorConfig(name=name, data_type=str(_one(msg, "data_type", "TYPE_FP32")), dims=dims)


def read_model_config(repo_dir: str | os.PathLike[str], model: str = MODEL_NAME) -> ModelConfig:
    """Read ``<repo>/<model>/config.pbtxt``.

    Raises :class:`FileNotFoundError` when it is missing and :class:`PbtxtError` (a
    ``ValueError``) when it cannot be parsed or lacks the model's inputs/outputs.
    """
    path = Path(repo_dir) / model / "config.pbtxt"
    msg = parse_pbtxt(path.read_text())
    name = _one(msg, "name", model)
    if name != model:
        raise PbtxtError(f"{path}: name {name!r} does not match the directory {model!r}")
    inputs = tuple(_tensor(m, f"{path}: input") for m in msg.get("input", []))
    outputs = tuple(_tensor(m, f"{path}: output") for m in msg.get("output", []))
    if not inputs or not outputs:
        raise PbtxtError(f"{path}: the config must list its inputs and outputs")
    batching = msg.get("dynamic_batching")
    db: dict[str, list[Any]] = batching[-1] if batching else {}
    groups = tuple(
        {k: v[-1] for k, v in g.items()}
        for g in msg.get("instance_group", [])
        if isinstance(g, dict)
    )
    max_batch_size = int(_one(msg, "max_batch_size", 0))
    if max_batch_size < 0:
        raise PbtxtError(f"{path}: max_batch_size must be >= 0")
    return ModelConfig(
        name=model,
        platform=str(_one(msg, "platform", "")),
        max_batch_size=max_batch_size,
        inputs=inputs,
        outputs=outputs,
        dynamic_batching=batching is not None,
        preferred_batch_sizes=tuple(int(b) for b in db.get("preferred_batch_size", [])),
        max_queue_delay_us=int(_one(db, "max_queue_delay_microseconds", 0)),
        instance_groups=groups,
    )
