"""The model zoo of the five studies: ``build_model(name, in_channels, image_size, num_classes, **options)``.

Importing this package does not import torch (``models.catalog`` is read by the Snakefile at parse time);
each family's module is imported when a model of it is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hessian_spectra.models.catalog import MODEL_NAMES, MODEL_OPTIONS, is_factory, layer_block_count

if TYPE_CHECKING:
    from torch import nn

__all__ = ["MODEL_NAMES", "MODEL_OPTIONS", "build_model", "layer_block_count", "layer_blocks"]

# name -> (module below hessian_spectra.models, constructor taking (in_channels, image_size, num_classes, **options))
_CONSTRUCTORS: dict[str, tuple[str, str]] = {
    "lenet": ("lenet", "LeNet"),
    "vgg11_bn": ("vgg", "vgg11_bn"),
    "resnet18": ("resnet_cifar", "resnet18"),
    "tf_cnn": ("tf_cnn", "TFCNN"),
    "simple_cnn_medium": ("simple_cnn", "simple_cnn_medium"),
    "resnet32_nobn": ("resnet_nobn", "resnet32_nobn"),
    "c1": ("c1", "C1"),
    "resnet20": ("resnet_cifar", "resnet20"),
    "mlp": ("mlp", "MLP"),
}


def build_model(name: str, in_channels: int, image_size: int, num_classes: int, **options: Any) -> nn.Module:
    """A freshly initialised model; seed torch before calling for a reproducible init.

    Every model takes ``width`` (multiplier on hidden widths); ``MODEL_OPTIONS[name]`` lists the rest. A
    ``module:function`` name calls that factory with the same arguments (``models.factory``).
    """
    if is_factory(name):
        from hessian_spectra.models.factory import build_factory_model

        return build_factory_model(name, in_channels, image_size, num_classes, **options)
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES)}")
    allowed = MODEL_OPTIONS[name]
    for option in options:
        if option not in allowed:
            raise ValueError(f"model {name}: unknown option {option!r}; allowed: {', '.join(allowed)}")
    for label, value in (("in_channels", in_channels), ("image_size", image_size), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model {name}: {label} must be a positive integer, got {value!r}")
    module, attr = _CONSTRUCTORS[name]
    constructor = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    return constructor(in_channels, image_size, num_classes, **options)


def layer_blocks(model: nn.Module) -> list[str]:
    """Parameter names of every Conv2d/Linear ``.weight``, in forward order (modules are registered in that order).

    These are the layer blocks of the layer-wise Hessian: biases and BatchNorm parameters belong to none.
    """
    from torch import nn

    return [
        f"{name}.weight" if name else "weight"
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
