"""SimpleCNN of the sharpest-directions study (seed 001), ``medium`` configuration (100 filters, 5x5 kernels)."""

from __future__ import annotations

from torch import nn

from hessian_spectra.models.common import (
    check_spatial,
    conv_stages,
    dense_layers,
    glorot_uniform_,
    init_weights,
    scaled,
)


class SimpleCNN(nn.Sequential):
    """Conv(n,'same') - Conv(n,'valid') - MaxPool2 - Conv(2n,'same') - Conv(2n,'valid') - MaxPool2 - Dense - Dense(C).

    ReLU after every hidden layer, Glorot-uniform weights, zero biases, no BN, no dropout.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0, n_filters: int = 100,
                 kernel_size: int = 5, n_dense: int = 128) -> None:
        c1, c2, hidden = scaled(n_filters, width), scaled(2 * n_filters, width), scaled(n_dense, width)
        k, same = kernel_size, kernel_size // 2
        stages = [[(c1, k, same), (c1, k, 0)], [(c2, k, same), (c2, k, 0)]]
        convs, channels, size = conv_stages(in_channels, image_size, stages, pool=(2, 2, 0))
        check_spatial("simple_cnn", image_size, size)
        super().__init__(convs | dense_layers([channels * size * size, hidden, num_classes], "dense", first_act=5))
        init_weights(self, glorot_uniform_)


def simple_cnn_medium(in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> SimpleCNN:
    """The ``medium`` SimpleCNN: n_filters=100, kernel_size=5, Dense(128)."""
    return SimpleCNN(in_channels, image_size, num_classes, width, n_filters=100, kernel_size=5, n_dense=128)
