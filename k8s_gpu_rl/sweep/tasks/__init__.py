"""Inference tasks of the sweep: one file per task in this folder, found automatically.

A task is a :class:`Task` subclass registered with :func:`register`; it builds its model
with random weights from the published architecture (nothing is downloaded), turns the
synthetic test image into an input tensor, and runs one batch. To add a model, drop one
file here::

    from k8s_gpu_rl.sweep.tasks import Task, register

    @register
    class MyTask(Task):
        name = "my-task"
        summary = "what it is, and its input size"
        input_size = (224, 224)

        def build(self):
            return MyModel().eval()

        def infer(self, model, batch):
            return model(batch)

A task file kept elsewhere is loaded when its path is in the environment variable
``K8S_GPU_RL_SWEEP_TASKS`` (``os.pathsep``-separated).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from k8s_gpu_rl.config import suggest
from k8s_gpu_rl.errors import ConfigError

_REGISTRY: dict[str, type[Task]] = {}


class Task:
    """One inference task: a model, its input preparation and one batched call."""

    name: ClassVar[str]
    """Task name (lower case, dashes): used in Pod names and the results' ``task`` column."""
    summary: ClassVar[str]
    """One line: the architecture, the input size and any reduction from the published one."""
    input_size: ClassVar[tuple[int, int]] = (224, 224)
    """Input height and width in pixels."""
    mean: ClassVar[tuple[float, float, float]] = (0.5, 0.5, 0.5)
    """Per-channel normalisation mean (input = (pixel / 255 - mean) / std)."""
    std: ClassVar[tuple[float, float, float]] = (0.5, 0.5, 0.5)
    """Per-channel normalisation standard deviation."""
    needs_transformers: ClassVar[bool] = False
    """True when the task builds its model with Hugging Face ``transformers``."""

    def build(self) -> Any:
        """The model in eval mode, random weights (seeded by the caller), no download."""
        raise NotImplementedError

    def preprocess(self, image: np.ndarray) -> Any:
        """``image`` (H x W x 3 uint8) to a float tensor [3, *input_size] (the CPU part of
        a request: resize and normalise)."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        x = F.interpolate(x[None], size=self.input_size, mode="bilinear", align_corners=False)[0]
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std

    def infer(self, model: Any, batch: Any) -> Any:
        """Run ``model`` on ``batch`` [N, 3, H, W] (inside ``torch.inference_mode``)."""
        return model(batch)


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"task name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


TASK_FILES_ENV = "K8S_GPU_RL_SWEEP_TASKS"
"""Environment variable: extra task files (``os.pathsep``-separated ``.py`` paths), for a
model kept outside this folder; child processes and Pods inherit it."""


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    for path in filter(None, os.environ.get(TASK_FILES_ENV, "").split(os.pathsep)):
        _load_file(Path(path))


def _load_file(path: Path) -> None:
    name = f"k8s_gpu_rl_sweep_user_task_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ConfigError(f"{TASK_FILES_ENV}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def available_tasks() -> list[str]:
    """Names of every task in this folder, in a stable order."""
    _discover()
    order = ["mobilenetv4", "super-resolution", "captioning", "detection"]
    return sorted(_REGISTRY, key=lambda n: (order.index(n) if n in order else len(order), n))


def get_task(name: str) -> Task:
    """A fresh instance of the task called ``name``."""
    names = available_tasks()
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown task {name!r}{suggest(name, names)}; allowed: {', '.join(names)}"
        )
    return _REGISTRY[name]()


def select_tasks(names: list[str] | None) -> list[str]:
    """Validate a list of task names (all tasks when None)."""
    if not names:
        return available_tasks()
    for n in names:
        get_task(n)
    return list(names)


def synthetic_image(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A deterministic test picture (H x W x 3 uint8): colour gradients, a few filled
    rectangles and discs, and mild noise, so that no image file has to be shipped."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / width, yy / height, 1.0 - xx / width * 0.5 - yy / height * 0.5], -1)
    for _ in range(6):
        y0, x0 = rng.integers(0, height - 40), rng.integers(0, width - 40)
        h, w = rng.integers(20, height // 3), rng.integers(20, width // 3)
        img[y0 : y0 + h, x0 : x0 + w] = rng.random(3)
    for _ in range(4):
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(15, 80)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.random(3)
    img += rng.normal(0.0, 0.02, img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
