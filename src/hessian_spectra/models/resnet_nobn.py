"""ResNet32 without normalisation of the sharpest-directions study (seed 001, ``cifar10_resnet32_nobn_nodrop``)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from hessian_spectra.models.common import glorot_uniform_, residual_stages, scaled


class PreActBlock(nn.Module):
    """y = conv2(relu(conv1(relu(x)))), out = y + shortcut(x); shortcut = Conv1x1(stride) when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv(relu(conv(relu(x)))) + shortcut(x)."""
        y = self.conv2(F.relu(self.conv1(F.relu(x))))
        return y + self.shortcut(x)


class ResNetNoBN(nn.Module):
    """Conv3x3(16) - 3 stages x ``blocks`` pre-activation blocks (16/32/64, strides 1/2/2) - ReLU - GAP - Dense(C).

    Convs ~ N(0, sqrt(2 * init_scale / fan_in)) with zero biases (Keras he_normal scaled by ``init_scale``);
    the Dense layer is Glorot-uniform with zero bias.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0,
                 init_scale: float = 1.0 / 15.0, blocks: int = 5) -> None:
        if not init_scale > 0:
            raise ValueError(f"resnet32_nobn: init_scale must be positive, got {init_scale!r}")
        super().__init__()
        planes = [scaled(stage, width) for stage in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, planes[0], 3, padding=1)
        self.layers, last = residual_stages(PreActBlock, planes[0], planes, (blocks,) * 3, (1, 2, 2))
        self.dense = nn.Linear(last, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 * init_scale / fan_in))
                nn.init.zeros_(module.bias)
        glorot_uniform_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of a batch of images."""
        out = self.layers(self.conv1(x))
        out = F.adaptive_avg_pool2d(F.relu(out), 1).flatten(1)
        return self.dense(out)


def resnet32_nobn(
    in_channels: int, image_size: int, num_classes: int, width: float = 1.0, init_scale: float = 1.0 / 15.0
) -> ResNetNoBN:
    """ResNet32 (3 x 5 blocks) without BatchNorm or dropout."""
    return ResNetNoBN(in_channels, image_size, num_classes, width, init_scale, blocks=5)
