"""VGG11 with BatchNorm as in LayerHessians (seed 004): config A convs, a BN1d classifier, no dropout."""

from __future__ import annotations

from torch import nn

from hessian_spectra.models.common import check_spatial, scaled

CONFIG_A: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Sequential):
    """``features`` (Conv3x3-BN-ReLU / MaxPool2) - flatten - ``classifier`` (Linear-BN1d-ReLU x2 - Linear)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0,
                 config: tuple[int | str, ...] = CONFIG_A) -> None:
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                size //= 2
            else:
                out = scaled(int(item), width)
                layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
                channels = out
        check_spatial("vgg11_bn", image_size, size)
        hidden = scaled(4096, width)
        super().__init__()
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(channels * size * size, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )


def vgg11_bn(in_channels: int, image_size: int, num_classes: int, width: float = 1.0) -> VGG:
    """VGG11_bn (configuration A)."""
    return VGG(in_channels, image_size, num_classes, width, CONFIG_A)
