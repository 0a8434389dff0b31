"""Dense curvature matrices for small problems: the float64 oracle of the tests, and ``--dense`` eigh."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from hessian_spectra.curvature.operator import Batch, LossFn, _cross_entropy, eval_mode
from hessian_spectra.curvature.registry import curvature_kind


def dense_hessian(
    model: nn.Module,
    data: Iterable[Batch],
    loss_fn: LossFn | None = None,
    params: Sequence[str] | None = None,
    curvature: str = "hessian",
    l2: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """The (n, n) ``curvature`` (a registered name: the Hessian by default) of the average loss w.r.t. the flattened
    ``params`` (default: all trainable), in eval mode, built with ``torch.autograd.functional`` independently of
    the operator's product kinds (the curvature's ``batch_matrix``): batch matrices summed with weights n_b / N."""
    batch_matrix = curvature_kind(curvature).batch_matrix
    loss_fn = loss_fn or _cross_entropy
    model = copy.deepcopy(model).to(dtype)
    named = dict(model.named_parameters())
    names = list(params) if params is not None else [n for n, p in named.items() if p.requires_grad]
    shapes = [named[n].shape for n in names]
    theta0 = torch.cat([named[n].detach().reshape(-1) for n in names])

    def unflatten(theta: Tensor) -> dict[str, Tensor]:
        out, offset = {}, 0
        for name, shape in zip(names, shapes):
            size = shape.numel()
            out[name] = theta[offset : offset + size].view(shape)
            offset += size
        return out

    def outputs(theta: Tensor, x: Tensor) -> Tensor:
        return functional_call(model, unflatten(theta), (x,))

    total = torch.zeros(len(theta0), len(theta0), dtype=dtype, device=theta0.device)
    num_data = 0
    with eval_mode(model):
        for x, y in data:
            x = x.to(theta0.device, dtype) if x.is_floating_point() else x.to(theta0.device)
            y = y.to(theta0.device)
            n_b = x.shape[0]
            num_data += n_b
            total += n_b * batch_matrix(outputs, loss_fn, theta0, x, y)
    total /= num_data
    return total + l2 * torch.eye(len(theta0), dtype=dtype, device=theta0.device)


def dense_matrix(op, chunk: int = 64) -> Tensor:
    """The operator as a dense symmetric (n, n) float64 matrix, from products with identity columns."""
    n = op.shape[0]
    columns = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        E = torch.zeros(stop - start, n, dtype=torch.float64, device=op.device)
        E[:, start:stop] = torch.eye(stop - start, dtype=torch.float64, device=op.device)
        columns.append(op.matmat(E.T))
    M = torch.cat(columns, dim=1)
    return 0.5 * (M + M.T)


def dense_eigh(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """All eigenvalues in descending order, their eigenvectors (columns) and residuals ||M u - lambda u||."""
    values, vectors = torch.linalg.eigh(matrix)
    values, vectors = values.flip(0), vectors.flip(1)
    residuals = (matrix @ vectors - vectors * values).norm(dim=0)
    return values, vectors, residuals
