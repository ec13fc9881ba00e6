"""The sweep's tasks: built offline from their published architectures, random weights."""

from __future__ import annotations

import numpy as np
import pytest

from k8s_gpu_rl.config import suggest
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.sweep.tasks import available_tasks, get_task, synthetic_image

# Published parameter counts: timm mobilenetv4_conv_small 3.77 M; nlpconnect
# vit-gpt2-image-captioning 239 M; DETR paper (Carion et al. 2020, table 1) DETR-R101 60 M;
# Swin2SR / SwinIR classical x2 about 12 M (SwinIR paper: 11.8 M).
PUBLISHED = {
    "mobilenetv4": 3.77e6,
    "captioning": 239e6,
    "detection": 60e6,
    "super-resolution": 11.8e6,
}
TOLERANCE = {"mobilenetv4": 0.01, "captioning": 0.01, "detection": 0.02, "super-resolution": 0.05}


def test_the_four_tasks_are_found_in_their_folder() -> None:
    assert available_tasks() == ["mobilenetv4", "super-resolution", "captioning", "detection"]
    with pytest.raises(ConfigError, match=r"unknown task 'detect'" + "(.*)did you mean"):
        get_task("detect")
    assert suggest("detect", available_tasks()) == " (did you mean 'detection'?)"


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_each_model_builds_offline_with_its_published_size(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    torch.manual_seed(0)
    model = get_task(name).build()
    n = sum(p.numel() for p in model.parameters())
    assert n == pytest.approx(PUBLISHED[name], rel=TOLERANCE[name])
    assert not model.training


def test_the_synthetic_image_and_preprocessing() -> None:
    a, b = synthetic_image(seed=3), synthetic_image(seed=3)
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, synthetic_image(seed=4))
    assert a.std() > 30  # a picture, not a flat field
    x = get_task("detection").preprocess(a)
    assert tuple(x.shape) == (3, 512, 512)
    sr = get_task("super-resolution").preprocess(a)  # Swin2SR takes pixels in [0, 1]
    assert float(sr.min()) >= 0.0 and float(sr.max()) <= 1.0
