"""Small models and datasets shared by the curvature tests (no tests here): dense float64 Hessians are cheap."""

from __future__ import annotations

import torch
from torch import nn

from hessian_spectra.curvature import make_batches

NUM_SAMPLES, BATCH_SIZE = 37, 16  # uneven batches: 16 + 16 + 5


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, 7), nn.Tanh(), nn.Linear(7, 4))


class SmallCNN(nn.Module):
    """Conv - BatchNorm - tanh - pool - Linear, with non-trivial running statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 2 * 2, 4)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.tanh(self.bn(self.conv(x)))
        return self.fc(nn.functional.avg_pool2d(out, 2).flatten(1))


def cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return SmallCNN()


def vector_data(seed: int = 1, features: int = 6, classes: int = 4) -> list:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(NUM_SAMPLES, features, generator=gen)
    y = torch.randint(0, classes, (NUM_SAMPLES,), generator=gen)
    return make_batches(x, y, BATCH_SIZE)


def image_data(seed: int = 1) -> list:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(NUM_SAMPLES, 1, 6, 6, generator=gen)
    y = torch.randint(0, 4, (NUM_SAMPLES,), generator=gen)
    return make_batches(x, y, BATCH_SIZE)


CASES = {"mlp": (mlp, vector_data), "cnn": (cnn, image_data)}


def case(name: str) -> tuple[nn.Module, list]:
    model_fn, data_fn = CASES[name]
    return model_fn(), data_fn()


def param_slices(model: nn.Module) -> dict[str, slice]:
    """Where each parameter sits in the flattened vector of all parameters."""
    slices, offset = {}, 0
    for name, p in model.named_parameters():
        slices[name] = slice(offset, offset + p.numel())
        offset += p.numel()
    return slices


def layer_weights(model: nn.Module) -> list[str]:
    return [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
