"""LeNet-5 as in LayerHessians (seed 004): two 5x5 convs with max-pooling, then three dense layers."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from hessian_spectra.models.common import check_spatial, out_size, scaled


class LeNet(nn.Sequential):
    """conv 6@5x5 - ReLU - MaxPool2 - conv 16@5x5 - ReLU - MaxPool2 - FC 120 - ReLU - FC 84 - ReLU - FC C."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> None:
        c1, c2, h1, h2 = (scaled(units, width) for units in (6, 16, 120, 84))
        size = out_size(out_size(out_size(out_size(image_size, 5), 2, 2), 5), 2, 2)
        check_spatial("lenet", image_size, size)
        super().__init__(
            OrderedDict(
                conv1=nn.Conv2d(in_channels, c1, 5),
                relu1=nn.ReLU(),
                pool1=nn.MaxPool2d(2),
                conv2=nn.Conv2d(c1, c2, 5),
                relu2=nn.ReLU(),
                pool2=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                fc1=nn.Linear(c2 * size * size, h1),
                relu3=nn.ReLU(),
                fc2=nn.Linear(h1, h2),
                relu4=nn.ReLU(),
                fc3=nn.Linear(h2, num_classes),
            )
        )
