"""The ground truth the scheduler cannot see: a job's real GPU memory need and run time.

Documented model (every number below is a catalogue entry, not fitted to anything):

* **GPU types** carry the per-server benchmark figures the user plans to measure
  (``../shared/SEEDS.md`` B, step 5): training throughput of resnet50 (images/s), yolov8m
  (images/s) and llama3 (tokens/s, LoRA), plus their memory.
* **Model families** say how much each benchmark explains them: a family's speed on a GPU
  type is the weighted geometric mean of the three benchmark ratios against the V100
  (``weights``), times a per-family, per-type residual (``residual``: what no benchmark
  captures, e.g. MobileNet being launch-bound).
* **Run time** of a job on ``n`` GPUs of one type:
  ``epoch x data_size_gib x samples_per_gib x 3 x gflops / (v100_tflops x 1000 x speed)
  / n ** scaling``, times ``cross_node`` when its workers span nodes, times a log-normal
  noise ``exp(N(0, runtime_sigma))``.
* **GPU memory** per worker: the model's ``memory_mib`` times the GPU type's
  ``memory_factor`` (workspace size differs by architecture) times ``exp(N(0,
  memory_sigma))`` per job, times ``exp(N(0, attempt_memory_sigma))`` per attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GpuType:
    """One GPU model and its per-server benchmark figures."""

    name: str
    """DCGM ``modelName``-style name."""
    memory_mib: int
    """Physical framebuffer (MiB)."""
    bench_resnet50: float
    """resnet50 training throughput (images/s)."""
    bench_yolov8m: float
    """yolov8m training throughput (images/s)."""
    bench_llama3: float
    """llama3-8B LoRA fine-tuning throughput (tokens/s)."""
    memory_factor: float = 1.0
    """Memory need on this type relative to the model's catalogue figure."""

    def benchmarks(self) -> tuple[float, float, float]:
        return (self.bench_resnet50, self.bench_yolov8m, self.bench_llama3)


GPU_TYPES: dict[str, GpuType] = {
    g.name: g
    for g in (
        GpuType("Tesla V100-SXM2-32GB", 32768, 1000.0, 150.0, 2000.0),
        GpuType("NVIDIA A100-SXM4-40GB", 40960, 2200.0, 300.0, 5200.0, 1.04),
        GpuType("NVIDIA GeForce RTX 3090", 24576, 1100.0, 180.0, 2600.0, 1.02),
        GpuType("NVIDIA GeForce RTX 3080", 10240, 900.0, 150.0, 2000.0, 1.02),
        GpuType("Tesla T4", 15360, 350.0, 60.0, 600.0),
    )
}
"""Shipped GPU types (benchmark figures are plausible round numbers, not measurements)."""
REFERENCE = GPU_TYPES["Tesla V100-SXM2-32GB"]


@dataclass(frozen=True)
class Family:
    """A model family: how the benchmarks explain its speed."""

    name: str
    modality: int
    """0 images, 1 text (a feature the predictor sees)."""
    samples_per_gib: float
    """Training samples per GiB of data."""
    weights: tuple[float, float, float]
    """Weights of the resnet50 / yolov8m / llama3 benchmark ratios in its speed."""
    residual: dict[str, float]
    """Speed factor per GPU type beyond the benchmarks (missing: 1)."""
    v100_tflops: float = 30.0
    """Effective training TFLOPS on the V100."""


@dataclass(frozen=True)
class ModelSpec:
    """One model: catalogue figures."""

    name: str
    family: str
    params_m: float
    """Parameters (millions)."""
    gflops: float
    """Forward GFLOPs per sample."""
    memory_mib: float
    """GPU memory need of one training worker at the default batch (MiB)."""
    image_gib: float
    """Container image size (GiB)."""
    weights_gib: float
    """Model (weights) download size (GiB)."""


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("resnet", 0, 10_000, (1.0, 0.0, 0.0), {}),
        Family("densenet", 0, 10_000, (0.8, 0.2, 0.0), {"NVIDIA A100-SXM4-40GB": 0.85}),
        Family("vgg", 0, 10_000, (1.0, 0.0, 0.0), {"NVIDIA GeForce RTX 3080": 0.9}),
        Family("mobilenet", 0, 10_000, (0.6, 0.4, 0.0), {"NVIDIA A100-SXM4-40GB": 0.7}, 12.0),
        Family("efficientnet", 0, 10_000, (0.7, 0.3, 0.0), {}, 18.0),
        Family("yolo", 0, 6_000, (0.0, 1.0, 0.0), {}),
        Family("vit", 0, 10_000, (0.3, 0.0, 0.7), {"Tesla T4": 0.8}),
        Family("bert", 1, 4_000, (0.2, 0.0, 0.8), {}),
        Family("llama", 1, 1_000, (0.0, 0.0, 1.0), {"NVIDIA GeForce RTX 3090": 1.1}, 45.0),
    )
}

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec("resnet18", "resnet", 11.7, 1.8, 3500, 6.0, 0.05),
        ModelSpec("resnet50", "resnet", 25.6, 4.1, 7800, 6.0, 0.1),
        ModelSpec("resnet101", "resnet", 44.5, 7.8, 11500, 6.0, 0.17),
        ModelSpec("densenet121", "densenet", 8.0, 2.9, 9000, 6.0, 0.03),
        ModelSpec("densenet169", "densenet", 14.1, 3.4, 11000, 6.0, 0.06),
        ModelSpec("vgg16", "vgg", 138.0, 15.5, 14000, 6.0, 0.5),
        ModelSpec("vgg19", "vgg", 143.7, 19.6, 16500, 6.0, 0.55),
        ModelSpec("mobilenet_v3_large", "mobilenet", 5.5, 0.22, 2600, 5.5, 0.02),
        ModelSpec("mobilenetv4_conv_small", "mobilenet", 3.8, 0.19, 2000, 5.5, 0.02),
        ModelSpec("efficientnet_b0", "efficientnet", 5.3, 0.39, 4200, 5.5, 0.02),
        ModelSpec("efficientnet_b4", "efficientnet", 19.0, 4.5, 13000, 5.5, 0.07),
        ModelSpec("yolov8s", "yolo", 11.2, 28.6, 5200, 7.0, 0.04),
        ModelSpec("yolov8m", "yolo", 25.9, 78.9, 9500, 7.0, 0.1),
        ModelSpec("yolov8l", "yolo", 43.7, 165.2, 15500, 7.0, 0.17),
        ModelSpec("vit_b_16", "vit", 86.6, 17.6, 12500, 6.5, 0.33),
        ModelSpec("vit_l_16", "vit", 304.3, 61.6, 27000, 6.5, 1.2),
        ModelSpec("bert-base", "bert", 110.0, 22.0, 8500, 6.5, 0.42),
        ModelSpec("bert-large", "bert", 340.0, 78.0, 19000, 6.5, 1.3),
        ModelSpec("llama3-1b-lora", "llama", 1240.0, 1300.0, 9000, 9.0, 2.5),
        ModelSpec("llama3-8b-lora", "llama", 8030.0, 8200.0, 29000, 9.0, 16.0),
    )
}
"""Shipped model catalogue (parameter counts and GFLOPs are the public figures, rounded;
memory needs are plausible for training at a usual batch size)."""


@dataclass(frozen=True)
class TruthConfig:
    """Noise and scaling of the ground truth."""

    runtime_sigma: float = 0.12
    """Log-normal sigma of a run's time around the model."""
    memory_sigma: float = 0.05
    """Log-normal sigma of a job's memory need around the catalogue figure."""
    attempt_memory_sigma: float = 0.08
    """Log-normal sigma of each attempt's peak memory around the job's need."""
    scaling: float = 0.9
    """Speed-up exponent of data parallelism: n GPUs run n ** scaling times as fast."""
    cross_node: float = 1.25
    """Slow-down of a job whose workers span nodes (gradients cross the node network)."""


def family_speed(model: ModelSpec, gpu: GpuType) -> float:
    """Speed of ``model``'s family on ``gpu`` relative to the V100."""
    fam = FAMILIES[model.family]
    ratios = np.array(gpu.benchmarks()) / np.array(REFERENCE.benchmarks())
    w = np.array(fam.weights)
    speed = float(np.exp((w * np.log(ratios)).sum() / w.sum()))
    return speed * fam.residual.get(gpu.name, 1.0)


def mean_runtime_s(
    model: ModelSpec, gpu: GpuType, data_size_gib: float, epoch: int, gpus: int, truth: TruthConfig
) -> float:
    """Noise-free run time (s) on ``gpus`` GPUs of type ``gpu`` on one node."""
    fam = FAMILIES[model.family]
    flops = epoch * data_size_gib * fam.samples_per_gib * 3.0 * model.gflops  # GFLOP
    single = flops / (fam.v100_tflops * 1000.0 * family_speed(model, gpu))
    return single / gpus**truth.scaling


def mean_memory_mib(model: ModelSpec, gpu: GpuType) -> float:
    """Noise-free memory need of one worker (MiB)."""
    return model.memory_mib * gpu.memory_factor


def draw_noise(rng: np.random.Generator, truth: TruthConfig) -> tuple[float, float]:
    """A job's (run-time factor, memory factor), drawn once per job and seed."""
    z = rng.standard_normal(2)
    return math.exp(truth.runtime_sigma * z[0]), math.exp(truth.memory_sigma * z[1])
