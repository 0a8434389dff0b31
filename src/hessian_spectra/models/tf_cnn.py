"""The Keras CNN of the large-batch study (seed 000): four VALID 3x3 convs, two max-pools, three dense layers."""

from __future__ import annotations

from torch import nn

from hessian_spectra.models.common import check_spatial, conv_stages, dense_layers, he_uniform_, init_weights, scaled


class TFCNN(nn.Sequential):
    """Conv3x3(64)x2 - MaxPool2 - Conv3x3(128)x2 - MaxPool2 - Dense(256)x2 - Dense(C); He-uniform, zero biases."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> None:
        c1, c2, hidden = scaled(64, width), scaled(128, width), scaled(256, width)
        stages = [[(c1, 3, 0), (c1, 3, 0)], [(c2, 3, 0), (c2, 3, 0)]]
        convs, channels, size = conv_stages(in_channels, image_size, stages, pool=(2, 2, 0))
        check_spatial("tf_cnn", image_size, size)
        dense = dense_layers([channels * size * size, hidden, hidden, num_classes], "dense", first_act=5)
        super().__init__(convs | dense)
        init_weights(self, he_uniform_)
