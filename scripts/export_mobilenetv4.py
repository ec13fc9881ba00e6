"""Export MobileNetV4-Conv-Small to ONNX (random weights) and measure it with ONNX Runtime.

    python scripts/export_mobilenetv4.py --out DIR [--repo] [--seed 0] [--opset 17]
        [--max-batch-size 8] [--max-queue-delay-us 0] [--preferred-batch-sizes 4,8]
        [--instance-kind KIND_GPU] [--repeats 30]

Writes ``DIR/mobilenetv4_conv_small.onnx`` and, with ``--repo``, a Triton model repository
``DIR/model_repository/mobilenetv4/{config.pbtxt,1/model.onnx}``. Prints the parameter
count, the file size and the ONNX Runtime CPU latency (one intra-op thread) at batch
1, 4 and 8 (median of ``--repeats`` runs after warm-up). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name} must be an integer, got {text!r}") from None
    if value < 1:
        raise UsageError(f"{name} must be >= 1, got {value}")
    return value


def _parse_sizes(text: str, max_batch_size: int) -> tuple[int, ...]:
    if not text.strip():
        return ()
    sizes = tuple(_positive_int("--preferred-batch-sizes", t.strip()) for t in text.split(","))
    bad = [s for s in sizes if s > max_batch_size]
    if bad:
        raise UsageError(f"--preferred-batch-sizes {bad} exceed --max-batch-size {max_batch_size}")
    return sizes


def _latency_ms(onnx_path: Path, batch: int, repeats: int) -> float:
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    for _ in range(3):
        sess.run(None, {"input0": x})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, {"input0": x})
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export MobileNetV4-Conv-Small to ONNX (random weights) and time it."
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--repo", action="store_true", help="also write a Triton model repository")
    parser.add_argument("--seed", default="0", help="weight seed (default 0)")
    parser.add_argument("--opset", default="17", help="ONNX opset (default 17)")
    parser.add_argument("--max-batch-size", default="8", help="config max_batch_size (default 8)")
    parser.add_argument("--max-queue-delay-us", default="0", help="dynamic batching delay")
    parser.add_argument("--preferred-batch-sizes", default="", help="e.g. 4,8 (default none)")
    parser.add_argument(
        "--instance-kind",
        default="KIND_GPU",
        choices=["KIND_GPU", "KIND_CPU", "KIND_AUTO"],
        help="instance_group kind (default KIND_GPU, as on the cluster)",
    )
    parser.add_argument("--repeats", default="30", help="timed runs per batch size (default 30)")
    args = parser.parse_args(argv)

    try:
        try:
            seed = int(args.seed)
        except ValueError:
            raise UsageError(f"--seed must be an integer, got {args.seed!r}") from None
        if seed < 0:
            raise UsageError(f"--seed must be >= 0, got {seed}")
        try:
            opset = int(args.opset)
        except ValueError:
            raise UsageError(f"--opset must be an integer, got {args.opset!r}") from None
        if not 13 <= opset <= 21:
            raise UsageError(f"--opset must be in 13..21, got {opset}")
        max_bs = _positive_int("--max-batch-size", args.max_batch_size)
        try:
            delay = int(args.max_queue_delay_us)
        except ValueError:
            raise UsageError(
                f"--max-queue-delay-us must be an integer, got {args.max_queue_delay_us!r}"
            ) from None
        if delay < 0:
            raise UsageError(f"--max-queue-delay-us must be >= 0, got {delay}")
        preferred = _parse_sizes(args.preferred_batch_sizes, max_bs)
        repeats = _positive_int("--repeats", args.repeats)
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a directory")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot create the directory ({exc.strerror})") from None
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import torch

    from k8s_gpu_rl.envs.backends.local.mobilenetv4 import MobileNetV4ConvSmall, count_parameters
    from k8s_gpu_rl.envs.backends.local.model import (
        ONNX_FILENAME,
        export_onnx,
        write_model_repository,
    )

    torch.manual_seed(seed)
    params = count_parameters(MobileNetV4ConvSmall())
    try:
        onnx_path = export_onnx(out / ONNX_FILENAME, seed=seed, opset=opset)
    except OSError as exc:
        print(f"error: cannot write {out / ONNX_FILENAME}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"parameters: {params:,} ({params / 1e6:.2f} M)")
    print(f"onnx: {onnx_path} ({onnx_path.stat().st_size / 2**20:.1f} MiB, opset {opset})")
    if args.repo:
        model_dir = write_model_repository(
            out / "model_repository",
            onnx_path,
            max_batch_size=max_bs,
            max_queue_delay_us=delay,
            preferred_batch_sizes=preferred,
            instance_kind=args.instance_kind,
        )
        print(f"model repository: {model_dir.parent} (model {model_dir.name})")
    print("onnxruntime CPU latency, 1 thread (median):")
    for batch in (1, 4, 8):
        ms = _latency_ms(onnx_path, batch, repeats)
        print(f"  batch {batch}: {ms:7.2f} ms  ({batch / ms * 1000:6.1f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
