"""Small helpers shared by the model families: width scaling, spatial sizes, initialisers."""

from __future__ import annotations

from collections.abc import Callable

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
