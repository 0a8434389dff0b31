"""HessianFlow's ``c1`` CNN (seed 002): two Conv5x5-ReLU-BN-MaxPool(3, 2, 1) stages, then three dense layers."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from hessian_spectra.models.common import out_size, scaled


class C1(nn.Sequential):
    """Conv5x5(64, pad 2) - ReLU - BN - MaxPool(3, 2, 1), twice, then FC 384 - ReLU - 192 - ReLU - C."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> None:
        channels, h1, h2 = scaled(64, width), scaled(384, width), scaled(192, width)
        size = out_size(out_size(image_size, 3, 2, 1), 3, 2, 1)
        super().__init__(
            OrderedDict(
                conv1=nn.Conv2d(in_channels, channels, 5, padding=2),
                relu1=nn.ReLU(),
                bn1=nn.BatchNorm2d(channels),
                pool1=nn.MaxPool2d(3, 2, 1),
                conv2=nn.Conv2d(channels, channels, 5, padding=2),
                relu2=nn.ReLU(),
                bn2=nn.BatchNorm2d(channels),
                pool2=nn.MaxPool2d(3, 2, 1),
                flatten=nn.Flatten(),
                linear1=nn.Linear(channels * size * size, h1),
                relu3=nn.ReLU(),
                linear2=nn.Linear(h1, h2),
                relu4=nn.ReLU(),
                linear3=nn.Linear(h2, num_classes),
            )
        )
