"""Image super-resolution: Swin2SR classical x2 (the ``swin2SR-classical-sr-x2-64`` layout)."""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.sweep.tasks import Task, register


@register
class SuperResolution(Task):
    name = "super-resolution"
    summary = (
        "Swin2SR classical x2: embed 180, 6 stages x 6 blocks, 6 heads, window 8, "
        "pixel-shuffle upsampler; 64x64 input (the model's training patch) -> 128x128"
    )
    input_size = (64, 64)
    mean = (0.0, 0.0, 0.0)  # Swin2SR takes pixels in [0, 1] (img_range 1)
    std = (1.0, 1.0, 1.0)
    needs_transformers = True

    def build(self) -> Any:
        from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

        config = Swin2SRConfig(
            image_size=64,
            embed_dim=180,
            depths=[6, 6, 6, 6, 6, 6],
            num_heads=[6, 6, 6, 6, 6, 6],
            window_size=8,
            upscale=2,
            upsampler="pixelshuffle",
            resi_connection="1conv",
            img_range=1.0,
        )
        return Swin2SRForImageSuperResolution(config).eval()

    def infer(self, model: Any, batch: Any) -> Any:
        return model(pixel_values=batch).reconstruction
