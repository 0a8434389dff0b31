"""SimpleCNN of the sharpest-directions study (seed 001), ``medium`` configuration (100 filters, 5x5 kernels)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from hessian_spectra.models.common import check_spatial, glorot_uniform_, init_weights, out_size, scaled


class SimpleCNN(nn.Sequential):
    """Conv(n,'same') - Conv(n,'valid') - MaxPool2 - Conv(2n,'same') - Conv(2n,'valid') - MaxPool2 - Dense - Dense(C).

    ReLU after every hidden layer, Glorot-uniform weights, zero biases, no BN, no dropout.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        width: float = 1.0,
        n_filters: int = 100,
        kernel_size: int = 5,
        n_dense: int = 128,
    ) -> None:
        c1, c2, hidden = scaled(n_filters, width), scaled(2 * n_filters, width), scaled(n_dense, width)
        k, same = kernel_size, kernel_size // 2
        size = out_size(out_size(image_size, k), 2, 2)
        size = out_size(out_size(size, k), 2, 2)
        check_spatial("simple_cnn", image_size, size)
        super().__init__(
            OrderedDict(
                conv1=nn.Conv2d(in_channels, c1, k, padding=same),
                relu1=nn.ReLU(),
                conv2=nn.Conv2d(c1, c1, k),
                relu2=nn.ReLU(),
                pool1=nn.MaxPool2d(2),
                conv3=nn.Conv2d(c1, c2, k, padding=same),
                relu3=nn.ReLU(),
                conv4=nn.Conv2d(c2, c2, k),
                relu4=nn.ReLU(),
                pool2=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                dense1=nn.Linear(c2 * size * size, hidden),
                relu5=nn.ReLU(),
                dense2=nn.Linear(hidden, num_classes),
            )
        )
        init_weights(self, glorot_uniform_)


def simple_cnn_medium(in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> SimpleCNN:
    """The ``medium`` SimpleCNN: n_filters=100, kernel_size=5, Dense(128)."""
    return SimpleCNN(in_channels, image_size, num_classes, width, n_filters=100, kernel_size=5, n_dense=128)
