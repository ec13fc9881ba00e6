"""Object detection: DETR with a ResNet-101 backbone (the ``detr-resnet-101`` layout)."""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.sweep.tasks import Task, register


@register
class Detection(Task):
    name = "detection"
    summary = (
        "DETR, ResNet-101 backbone (bottleneck 3-4-23-3), 6+6 transformer layers, 100 queries, "
        "91 COCO classes; 512x512 input (reduced from the published 800 px short side)"
    )
    input_size = (512, 512)
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)
    needs_transformers = True

    def build(self) -> Any:
        from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

        backbone = ResNetConfig(
            depths=[3, 4, 23, 3],
            hidden_sizes=[256, 512, 1024, 2048],
            embedding_size=64,
            layer_type="bottleneck",
            out_features=["stage4"],
        )
        config = DetrConfig(
            use_timm_backbone=False,
            backbone_config=backbone,
            use_pretrained_backbone=False,
            num_labels=91,
        )
        return DetrForObjectDetection(config).eval()

    def infer(self, model: Any, batch: Any) -> Any:
        return model(pixel_values=batch).logits
