"""The dense network of the init/chain-rule study (seed 003): Flatten - Dense(30) - act - Dense(30) - act - Dense(C)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from hessian_spectra.models.catalog import MLP_ACTIVATIONS, MLP_HIDDEN
from hessian_spectra.models.common import dense_layers, glorot_uniform_, init_weights, scaled

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity}


class MLP(nn.Sequential):
    """Dense layers ``dense1 .. denseL`` with one activation; Glorot-uniform weights except dense1 when ``init_sd``
    is given (N(0, init_sd), Keras RandomNormal), zero biases."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0,
                 activation: str = "relu", init_sd: float | None = None, hidden: Sequence[int] = MLP_HIDDEN) -> None:
        if activation not in MLP_ACTIVATIONS:
            raise ValueError(f"mlp: unknown activation {activation!r}; allowed: {', '.join(MLP_ACTIVATIONS)}")
        if init_sd is not None and not init_sd > 0:
            raise ValueError(f"mlp: init_sd must be positive or None, got {init_sd!r}")
        if isinstance(hidden, (str, bytes)) or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ValueError(f"mlp: hidden must be a list of positive integers, got {hidden!r}")
        sizes = [in_channels * image_size * image_size] + [scaled(h, width) for h in hidden] + [num_classes]
        super().__init__(dense_layers(sizes, "dense", _ACTIVATIONS[activation], act_name="act"))
        init_weights(self, glorot_uniform_)
        if init_sd is not None:
            nn.init.normal_(self.dense1.weight, 0.0, init_sd)
