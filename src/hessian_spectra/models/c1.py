"""HessianFlow's ``c1`` CNN (seed 002): two Conv5x5-ReLU-BN-MaxPool(3, 2, 1) stages, then three dense layers."""

from __future__ import annotations

from torch import nn

from hessian_spectra.models.common import conv_stages, dense_layers, scaled


class C1(nn.Sequential):
    """Conv5x5(64, pad 2) - ReLU - BN - MaxPool(3, 2, 1), twice, then FC 384 - ReLU - 192 - ReLU - C."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> None:
        filters, h1, h2 = scaled(64, width), scaled(384, width), scaled(192, width)
        stages = [[(filters, 5, 2)], [(filters, 5, 2)]]
        convs, channels, size = conv_stages(in_channels, image_size, stages, pool=(3, 2, 1), batch_norm=True)
        super().__init__(convs | dense_layers([channels * size * size, h1, h2, num_classes], "linear", first_act=3))
