"""Loss surfaces along two directions: the mean loss at theta + c1 v1 + c2 v2 on a grid, from the saved theta.

A direction is a dict ``{parameter name: tensor}``; parameters it leaves out do not move. Directions come from
flat Hessian eigenvectors (``unflatten_direction``) or are filter-normalised random draws (Li et al. 2018,
``filter_normalized_direction``). Every grid point's parameters are built afresh from theta (no accumulated
steps, so no drift), and each point costs one loss evaluation over the data. For an ``nn.Sequential`` whose
leading modules no direction touches, those modules' outputs are computed once per batch and reused.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from hessian_spectra.curvature import eval_mode

Batch = tuple[Tensor, Tensor]
Direction = dict[str, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class Surface:
    """``loss[i, j]`` and ``accuracy[i, j]`` at ``(c1, c2) = (coords[i], coords[j])``; ``evaluations`` counts the
    loss evaluations over the whole data (one per grid point)."""

    coords: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    evaluations: int


def grid_coordinates(points: int, extent: float) -> np.ndarray:
    """``points`` values evenly spaced over [-extent, extent]; for odd ``points`` the middle one is exactly 0."""
    if points < 1 or not extent > 0:
        raise ValueError(f"need points >= 1 and extent > 0, got {points} and {extent}")
    if points == 1:
        return np.zeros(1)
    return extent * (2 * np.arange(points) - (points - 1)) / (points - 1)


def unflatten_direction(model: nn.Module, names: Sequence[str], vector: Tensor | np.ndarray) -> Direction:
    """A flat vector over the parameters ``names`` (concatenated in that order, as an operator's ``param_names``)
    as a direction; every other parameter of ``model`` stays put."""
    named = dict(model.named_parameters())
    unknown = [name for name in names if name not in named]
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}")
    vector = torch.as_tensor(vector)
    sizes = [named[name].numel() for name in names]
    if vector.ndim != 1 or vector.numel() != sum(sizes):
        raise ValueError(f"a direction over {', '.join(names)} needs {sum(sizes)} entries, got {tuple(vector.shape)}")
    parts = vector.split(sizes)
    return {name: part.reshape(named[name].shape) for name, part in zip(names, parts)}


def filter_normalized_direction(
    model: nn.Module, names: Sequence[str] | None = None, generator: torch.Generator | None = None
) -> Direction:
    """A Gaussian direction over ``names`` (default: all trainable parameters) as in Li et al. (2018): each filter
    (slice along dim 0 of a parameter with >= 2 dims) is rescaled to the norm of theta's filter, and 1-D
    parameters (biases, BatchNorm) are zero."""
    named = dict(model.named_parameters())
    names = list(names) if names is not None else [name for name, p in named.items() if p.requires_grad]
    direction = {}
    for name in names:
        theta = named[name].detach()
        if theta.ndim <= 1:
            direction[name] = torch.zeros_like(theta)
            continue
        filters = torch.randn(len(theta), theta[0].numel(), generator=generator, dtype=torch.float64)
        scale = theta.reshape(len(theta), -1).double().cpu().norm(dim=1) / filters.norm(dim=1)
        direction[name] = (filters * scale[:, None]).reshape(theta.shape).to(theta)
    return direction


def _split_sequential(model: nn.Module, moved: set[str]) -> tuple[nn.Module | None, nn.Module]:
    """(head, tail): for an ``nn.Sequential``, the leading children owning none of ``moved`` and the rest (with
    the model's parameter names); otherwise (None, model)."""
    if not isinstance(model, nn.Sequential):
        return None, model
    children = list(model.named_children())
    first = next(
        i
        for i, (prefix, child) in enumerate(children)
        if any(f"{prefix}.{n}" in moved for n, _ in child.named_parameters())
    )
    if first == 0:
        return None, model
    return nn.Sequential(OrderedDict(children[:first])), nn.Sequential(OrderedDict(children[first:]))


def loss_surface(
    model: nn.Module,
    batches: Sequence[Batch],
    d1: Direction,
    d2: Direction,
    coords: np.ndarray,
    *,
    loss_fn: LossFn | None = None,
    dtype: torch.dtype | None = None,
) -> Surface:
    """Mean loss (batch b weighs n_b / N) and accuracy at theta + c1 d1 + c2 d2 for c1, c2 in ``coords``, in eval
    mode; ``dtype`` converts a copy of the model and the inputs (e.g. float64)."""
    loss_fn = loss_fn or nn.functional.cross_entropy
    if dtype is not None and dtype != next(model.parameters()).dtype:
        model = copy.deepcopy(model).to(dtype)
    named = dict(model.named_parameters())
    moved = [name for name in named if name in d1 or name in d2]
    unknown = sorted((set(d1) | set(d2)) - set(named))
    if unknown or not moved:
        raise ValueError(f"directions must name parameters of the model; unknown: {', '.join(unknown) or 'none given'}")
    theta = {name: named[name].detach() for name in moved}
    v1 = {name: d1[name].to(theta[name]) if name in d1 else torch.zeros_like(theta[name]) for name in moved}
    v2 = {name: d2[name].to(theta[name]) if name in d2 else torch.zeros_like(theta[name]) for name in moved}
    for name in moved:
        if v1[name].shape != theta[name].shape or v2[name].shape != theta[name].shape:
            raise ValueError(f"direction entry {name} has the wrong shape (parameter: {tuple(theta[name].shape)})")
    device, compute_dtype = theta[moved[0]].device, theta[moved[0]].dtype
    head, tail = _split_sequential(model, set(moved))
    n = len(coords)
    loss, accuracy = np.zeros((n, n)), np.zeros((n, n))
    evaluations = 0
    with eval_mode(model), torch.no_grad():
        inputs = []
        for x, y in batches:
            x = x.to(device, compute_dtype) if x.is_floating_point() else x.to(device)
            inputs.append((head(x) if head is not None else x, y.to(device)))
        num_data = sum(len(y) for _, y in inputs)
        if num_data == 0:
            raise ValueError("the data yielded no samples")
        for i, c1 in enumerate(coords):
            for j, c2 in enumerate(coords):
                params = {name: theta[name] + float(c1) * v1[name] + float(c2) * v2[name] for name in moved}
                total = torch.zeros((), dtype=torch.float64, device=device)
                correct = torch.zeros((), dtype=torch.int64, device=device)
                for x, y in inputs:
                    out = functional_call(tail, params, (x,))
                    total += loss_fn(out, y).double() * len(y)
                    correct += (out.argmax(dim=1) == y).sum()
                loss[i, j], accuracy[i, j] = total.item() / num_data, correct.item() / num_data
                evaluations += 1
    return Surface(coords=np.asarray(coords, dtype=float), loss=loss, accuracy=accuracy, evaluations=evaluations)
