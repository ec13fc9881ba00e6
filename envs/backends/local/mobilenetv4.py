"""MobileNetV4-Conv-Small in plain PyTorch (no timm, no torchvision).

The architecture follows the MobileNetV4 paper (Qin et al., 2024, arXiv:2404.10518, table
"MNv4-Conv-S") as timm lays it out for ``mobilenetv4_conv_small``: a 3x3/2 conv stem with 32
channels, then five stages at 112, 56, 28, 14 and 7 pixels:

=====  ===========================================================  =========
stage  blocks (kernel / stride / expansion / out channels)          input
=====  ===========================================================  =========
0      conv 3x3/2 -> 32, conv 1x1 -> 32                             112x112
1      conv 3x3/2 -> 96, conv 1x1 -> 64                             56x56
2      ExtraDW 5x5,5x5/2 e3 -> 96; 4x IR 3x3 e2 -> 96;              28x28
       ConvNeXt-like 3x3 e4 -> 96
3      ExtraDW 3x3,3x3/2 e6 -> 128; ExtraDW 5x5,5x5 e4 -> 128;      14x14
       IR 5x5 e4, IR 5x5 e3, 2x IR 3x3 e4 -> 128
4      conv 1x1 -> 960                                              7x7
head   global average pool, conv 1x1 960 -> 1280 (no bias) + BN +   1x1
       ReLU, linear 1280 -> classes
=====  ===========================================================  =========

Every block is a *universal inverted bottleneck* (UIB) with an optional depthwise conv
before the expansion (``start``) and an optional one after it (``mid``): ExtraDW has both,
IR only the middle one, ConvNeXt-like only the first. Activations are ReLU, normalisation
is BatchNorm; a block has a residual when its stride is 1 and its width does not change.

With 1000 classes the model has **3,774,024 parameters** (BatchNorm running statistics
not counted), which is timm's 3.77 M for ``mobilenetv4_conv_small.e2400_r224_in1k``. Input
is NCHW float32 (224x224 nominal; any size divisible by 32 works), output is ``[N, classes]``
logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["MobileNetV4ConvSmall", "UniversalInvertedResidual", "count_parameters"]


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10 % below it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + optional ReLU, padded to keep ``size / stride``."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_chs,
                out_chs,
                kernel_size,
                stride=stride,
                padding=(kernel_size - 1) // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_chs),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UniversalInvertedResidual(nn.Module):
    """The MobileNetV4 UIB block.

    ``start_k``: kernel of the depthwise conv before the expansion (0 = none);
    ``mid_k``: kernel of the depthwise conv after the expansion (0 = none). The stride is
    taken by the middle depthwise conv when there is one, else by the first.
    """

    def __init__(
        self, in_chs: int, out_chs: int, start_k: int, mid_k: int, stride: int, expand: float
    ) -> None:
        super().__init__()
        mid_chs = _make_divisible(in_chs * expand)
        self.dw_start: nn.Module = (
            ConvBNAct(in_chs, in_chs, start_k, 1 if mid_k else stride, groups=in_chs, act=False)
            if start_k
            else nn.Identity()
        )
        self.pw_exp = ConvBNAct(in_chs, mid_chs, 1)
        self.dw_mid: nn.Module = (
            ConvBNAct(mid_chs, mid_chs, mid_k, stride, groups=mid_chs) if mid_k else nn.Identity()
        )
        self.pw_proj = ConvBNAct(mid_chs, out_chs, 1, act=False)
        self.has_skip = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x))))
        return x + y if self.has_skip else y


@dataclass(frozen=True)
class _Conv:
    kernel: int
    stride: int
    out: int


@dataclass(frozen=True)
class _UIB:
    start_k: int
    mid_k: int
    stride: int
    expand: float
    out: int
    repeat: int = 1


# The "conv_small" stages (see the module docstring).
_STAGES: tuple[tuple[_Conv | _UIB, ...], ...] = (
    (_Conv(3, 2, 32), _Conv(1, 1, 32)),
    (_Conv(3, 2, 96), _Conv(1, 1, 64)),
    (
        _UIB(5, 5, 2, 3, 96),
        _UIB(0, 3, 1, 2, 96, repeat=4),
        _UIB(3, 0, 1, 4, 96),
    ),
    (
        _UIB(3, 3, 2, 6, 128),
        _UIB(5, 5, 1, 4, 128),
        _UIB(0, 5, 1, 4, 128),
        _UIB(0, 5, 1, 3, 128),
        _UIB(0, 3, 1, 4, 128, repeat=2),
    ),
    (_Conv(1, 1, 960),),
)


class MobileNetV4ConvSmall(nn.Module):
    """MobileNetV4-Conv-Small classifier (3,774,024 parameters at 1000 classes)."""

    stem_chs = 32
    head_chs = 1280

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.stem = ConvBNAct(3, self.stem_chs, 3, stride=2)
        chs = self.stem_chs
        stages: list[nn.Module] = []
        for spec in _STAGES:
            blocks: list[nn.Module] = []
            for block in spec:
                if isinstance(block, _Conv):
                    blocks.append(ConvBNAct(chs, block.out, block.kernel, block.stride))
                    chs = block.out
                    continue
                for i in range(block.repeat):
                    stride = block.stride if i == 0 else 1
                    blocks.append(
                        UniversalInvertedResidual(
                            chs, block.out, block.start_k, block.mid_k, stride, block.expand
                        )
                    )
                    chs = block.out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(chs, self.head_chs, 1, bias=False)
        self.norm_head = nn.BatchNorm2d(self.head_chs)
        self.act_head = nn.ReLU(inplace=True)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(self.head_chs, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal (fan-out) convs, unit BatchNorm, uniform classifier (timm's scheme)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.weight.shape[0] ** 0.5
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        x = self.act_head(self.norm_head(self.conv_head(self.pool(x))))
        return self.classifier(self.flatten(x))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())
