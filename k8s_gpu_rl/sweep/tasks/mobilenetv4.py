"""MobileNetV4-Conv-Small image classification (the project's own plain-torch build)."""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.sweep.tasks import Task, register


@register
class MobileNetV4(Task):
    name = "mobilenetv4"
    summary = "MobileNetV4-Conv-Small, 1000 classes, 224x224 (3.77 M parameters)"
    input_size = (224, 224)
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def build(self) -> Any:
        from k8s_gpu_rl.envs.backends.local.mobilenetv4 import MobileNetV4ConvSmall

        return MobileNetV4ConvSmall(num_classes=1000).eval()
