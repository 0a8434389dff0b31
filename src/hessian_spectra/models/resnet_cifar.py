"""CIFAR ResNets with BatchNorm: ResNet18 (kuangliu style, LayerHessians) and ResNet20 (bearpaw, HessianFlow)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from hessian_spectra.models.common import residual_stages, scaled


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (Conv1x1+BN when the shape changes, else identity), ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Conv3x3 stem (no bias) - BN - ReLU, stages of BasicBlocks, global average pool, Linear."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stage_planes: tuple[int, ...],
        stage_blocks: tuple[int, ...],
        stage_strides: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stage_planes[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stage_planes[0])
        self.layers, planes = residual_stages(BasicBlock, stage_planes[0], stage_planes, stage_blocks, stage_strides)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of a batch of images."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet18(in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> CifarResNet:
    """ResNet18, CIFAR variant: 64-channel stem, no max-pool, [2, 2, 2, 2] blocks; PyTorch default init."""
    planes = tuple(scaled(c, width) for c in (64, 128, 256, 512))
    return CifarResNet(in_channels, num_classes, planes, (2, 2, 2, 2), (1, 2, 2, 2))


def resnet20(in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> CifarResNet:
    """ResNet20 (3 stages x 3 blocks, 16/32/64); convs N(0, sqrt(2 / (k*k*out))), BN (1, 0), Linear default."""
    planes = tuple(scaled(c, width) for c in (16, 32, 64))
    model = CifarResNet(in_channels, num_classes, planes, (3, 3, 3), (1, 2, 2))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
