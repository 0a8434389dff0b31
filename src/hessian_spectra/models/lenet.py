"""LeNet-5 as in LayerHessians (seed 004): two 5x5 convs with max-pooling, then three dense layers."""

from __future__ import annotations

from torch import nn

from hessian_spectra.models.common import check_spatial, conv_stages, dense_layers, scaled


class LeNet(nn.Sequential):
    """conv 6@5x5 - ReLU - MaxPool2 - conv 16@5x5 - ReLU - MaxPool2 - FC 120 - ReLU - FC 84 - ReLU - FC C."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> None:
        c1, c2, h1, h2 = (scaled(units, width) for units in (6, 16, 120, 84))
        convs, channels, size = conv_stages(in_channels, image_size, [[(c1, 5, 0)], [(c2, 5, 0)]], pool=(2, 2, 0))
        check_spatial("lenet", image_size, size)
        super().__init__(convs | dense_layers([channels * size * size, h1, h2, num_classes], "fc", first_act=3))
