"""The Keras CNN of the large-batch study (seed 000): four VALID 3x3 convs, two max-pools, three dense layers."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from hessian_spectra.models.common import check_spatial, he_uniform_, init_weights, out_size, scaled


class TFCNN(nn.Sequential):
    """Conv3x3(64)x2 - MaxPool2 - Conv3x3(128)x2 - MaxPool2 - Dense(256)x2 - Dense(C); He-uniform, zero biases."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> None:
        c1, c2, hidden = scaled(64, width), scaled(128, width), scaled(256, width)
        size = out_size(out_size(out_size(image_size, 3), 3), 2, 2)
        size = out_size(out_size(out_size(size, 3), 3), 2, 2)
        check_spatial("tf_cnn", image_size, size)
        super().__init__(
            OrderedDict(
                conv1=nn.Conv2d(in_channels, c1, 3),
                relu1=nn.ReLU(),
                conv2=nn.Conv2d(c1, c1, 3),
                relu2=nn.ReLU(),
                pool1=nn.MaxPool2d(2),
                conv3=nn.Conv2d(c1, c2, 3),
                relu3=nn.ReLU(),
                conv4=nn.Conv2d(c2, c2, 3),
                relu4=nn.ReLU(),
                pool2=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                dense1=nn.Linear(c2 * size * size, hidden),
                relu5=nn.ReLU(),
                dense2=nn.Linear(hidden, hidden),
                relu6=nn.ReLU(),
                dense3=nn.Linear(hidden, num_classes),
            )
        )
        init_weights(self, he_uniform_)
