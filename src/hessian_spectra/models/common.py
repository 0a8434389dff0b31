"""Small helpers shared by the model families: width scaling, spatial sizes, layer stacks, initialisers."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn


def scaled(units: int, width: float) -> int:
    """A hidden width multiplied by ``width``: ``max(1, round(units * width))``."""
    if not width > 0:
        raise ValueError(f"width must be a positive number, got {width!r}")
    return max(1, round(units * width))


def out_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial output size of a convolution or pooling layer (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def check_spatial(model: str, image_size: int, final_size: int) -> None:
    """Reject an input too small to survive the model's convolutions and poolings."""
    if final_size < 1:
        raise ValueError(f"{model}: image_size {image_size} is too small (feature maps shrink to {final_size})")


def conv_stages(
    in_channels: int,
    image_size: int,
    stages: Sequence[Sequence[tuple[int, int, int]]],
    pool: tuple[int, int, int],
    batch_norm: bool = False,
) -> tuple[OrderedDict[str, nn.Module], int, int]:
    """Layers ``conv{i}`` - ``relu{i}`` (- ``bn{i}``), each stage closed by ``pool{s}`` = MaxPool2d(kernel, stride,
    padding); a conv is (out_channels, kernel, padding). Also the output channels and spatial size."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, size, index = in_channels, image_size, 0
    for stage, convs in enumerate(stages, start=1):
        for out_channels, kernel, padding in convs:
            index += 1
            layers[f"conv{index}"] = nn.Conv2d(channels, out_channels, kernel, padding=padding)
            layers[f"relu{index}"] = nn.ReLU()
            if batch_norm:
                layers[f"bn{index}"] = nn.BatchNorm2d(out_channels)
            channels, size = out_channels, out_size(size, kernel, 1, padding)
        layers[f"pool{stage}"] = nn.MaxPool2d(*pool)
        size = out_size(size, *pool)
    return layers, channels, size


def dense_layers(
    sizes: Sequence[int],
    name: str,
    activation: Callable[[], nn.Module] = nn.ReLU,
    act_name: str = "relu",
    first_act: int = 1,
) -> OrderedDict[str, nn.Module]:
    """``flatten``, then Linear layers ``{name}1, {name}2, ..`` through ``sizes``, each but the last followed by
    ``activation()`` named ``{act_name}{first_act}, ..``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        layers[f"{name}{index}"] = nn.Linear(fan_in, fan_out)
        if index < len(sizes) - 1:
            layers[f"{act_name}{first_act + index - 1}"] = activation()
    return layers


def residual_stages(
    block: Callable[[int, int, int], nn.Module],
    in_planes: int,
    stage_planes: Sequence[int],
    stage_blocks: Sequence[int],
    stage_strides: Sequence[int],
) -> tuple[nn.Sequential, int]:
    """Stages of ``block(in_planes, planes, stride)``, each stage's first block with its stride and the rest with 1,
    as one ``nn.Sequential`` of per-stage ``nn.Sequential``s; also the planes of the last block."""
    planes = in_planes
    stages = []
    for out_planes, blocks, stride in zip(stage_planes, stage_blocks, stage_strides):
        layers = []
        for index in range(blocks):
            layers.append(block(planes, out_planes, stride if index == 0 else 1))
            planes = out_planes
        stages.append(nn.Sequential(*layers))
    return nn.Sequential(*stages), planes


def init_weights(model: nn.Module, weight_init: Callable[[torch.Tensor], object]) -> None:
    """Apply ``weight_init`` to every Conv2d/Linear weight and zero their biases (Keras-style init)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            weight_init(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def he_uniform_(weight: torch.Tensor) -> torch.Tensor:
    """Keras ``he_uniform``: U(-sqrt(6 / fan_in), sqrt(6 / fan_in))."""
    return nn.init.kaiming_uniform_(weight, a=0.0, nonlinearity="relu")


def glorot_uniform_(weight: torch.Tensor) -> torch.Tensor:
    """Keras ``glorot_uniform``: U(+-sqrt(6 / (fan_in + fan_out))), fans including the receptive field."""
    return nn.init.xavier_uniform_(weight)
