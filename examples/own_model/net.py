"""A small network of the user's own, built by a factory the workflow imports as ``examples.own_model.net:small_cnn``.

The workflow calls it with the data's ``in_channels`` and ``num_classes``, the run's ``image_size``, and the run's
``model_options`` as keyword arguments (here ``channels``).
"""

from torch import nn


def small_cnn(in_channels: int, image_size: int, num_classes: int, channels: int = 8) -> nn.Module:
    """Two 3x3 convolutions (the second strided) and a linear classifier: three layer blocks."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * channels * ((image_size + 1) // 2) ** 2, num_classes),
    )
