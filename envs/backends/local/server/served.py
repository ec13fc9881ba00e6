"""The served model as the HTTP layer sees it: its config, ONNX Runtime session, batcher
and readiness."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from k8s_gpu_rl.envs.backends.local.server.batcher import DynamicBatcher
from k8s_gpu_rl.envs.backends.local.server.limiter import ComputeShareLimiter
from k8s_gpu_rl.envs.backends.local.server.metrics import TritonMetrics
from k8s_gpu_rl.envs.backends.local.server.protocol import DTYPES


def execution_providers() -> list[str]:
    """ONNX Runtime's CUDA provider where one is installed and a GPU is visible (the
    ``onnxruntime-gpu`` package), else the CPU. ``K8SGPURL_DEVICE=cpu`` forces the CPU.

    On a GPU the vGPU share still holds through the limiter (as HAMi-core throttles
    kernel launches); the testbed also sets ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` to the
    share, which caps the SMs a process may use where an MPS daemon runs."""
    import onnxruntime as ort

    if os.environ.get("K8SGPURL_DEVICE", "auto") != "cpu" and (
        "CUDAExecutionProvider" in ort.get_available_providers()
    ):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session_options(threads: int) -> Any:
    """One sequential session with ``threads`` intra-op threads that do not spin."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class ServedModel:
    """The model as the HTTP layer sees it: config, ORT session, batcher, readiness."""

    def __init__(
        self,
        repo: Path,
        name: str,
        threads: int,
        share: float,
        pod: str,
        limiter: ComputeShareLimiter | None = None,
    ) -> None:
        from k8s_gpu_rl.envs.backends.local.model import read_model_config

        self.name = name
        self.version = "1"
        self.repo = repo
        self.config = read_model_config(repo, name)
        self.metrics = TritonMetrics(name, self.version, share)
        self.pod = pod
        self.limiter = ComputeShareLimiter(share) if limiter is None else limiter
        self.threads = threads
        self.ready = False
        self.batcher: DynamicBatcher | None = None
        self._session: Any = None

    def load(self) -> None:
        """Create the ORT session, start the batcher, run one warm-up inference."""
        import onnxruntime as ort

        path = self.repo / self.name / self.version / "model.onnx"
        self._session = ort.InferenceSession(
            str(path), _session_options(self.threads), providers=execution_providers()
        )
        inp = self.config.inputs[0]
        names = {i.name for i in self._session.get_inputs()}
        if len(self.config.inputs) != 1 or inp.name not in names:
            raise RuntimeError(
                f"{path}: the config's inputs {[i.name for i in self.config.inputs]} do not "
                f"match the model's {sorted(names)}"
            )
        self._output_names = [o.name for o in self.config.outputs]
        self.batcher = self._make_batcher()
        warm = np.zeros((1, *inp.dims), dtype=DTYPES[inp.datatype])
        self._run(warm)
        self.ready = True

    def _make_batcher(self) -> DynamicBatcher:
        """The dynamic batcher the config asks for, one worker per model instance."""
        count = sum(int(g.get("count", 1)) for g in self.config.instance_groups) or 1
        return DynamicBatcher(
            self._run,
            self.config.max_batch_size,
            self.config.preferred_batch_sizes,
            self.config.max_queue_delay_us if self.config.dynamic_batching else 0,
            self.limiter,
            self.metrics,
            instances=count,
        )

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outs = self._session.run(self._output_names, {self.config.inputs[0].name: x})
        return dict(zip(self._output_names, outs, strict=True))

    def metadata(self) -> dict[str, Any]:
        """``GET /v2/models/<m>``: name, versions, platform and the tensors' shapes."""
        batch = [-1] if self.config.max_batch_size > 0 else []
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.config.platform,
            "inputs": [
                {"name": t.name, "datatype": t.datatype, "shape": batch + list(t.dims)}
                for t in self.config.inputs
            ],
            "outputs": [
                {"name": t.name, "datatype": t.datatype, "shape": batch + list(t.dims)}
                for t in self.config.outputs
            ],
        }
