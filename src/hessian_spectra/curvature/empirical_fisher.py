"""The empirical Fisher ``F = (1/N) sum_i g_i g_i^T``, ``g_i`` the gradient of sample i's loss (curvlinops'
``EFLinearOperator``, the uncentered gradient covariance).

Products: ``cached`` only. A batch's graph is its per-sample gradients (``vmap(grad(...))``: one (n_b, group size)
matrix ``G`` per parameter group), kept under the memory budget like the other cached graphs, and a product is two
matrix products, ``F_b V = G^T (G V) / n_b``; a batch whose gradients do not fit the budget recomputes them in every
product. One batch's per-sample gradients (n_b times the parameters) must fit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.functional import jacobian
from torch.func import functional_call, grad, vmap

from hessian_spectra.curvature.kinds import Curvature, Outputs
from hessian_spectra.curvature.products import LossFn, ProductKind


@dataclass
class PerSampleGradients:
    """One batch's per-sample gradients, an (n_b, group size) matrix per parameter group."""

    groups: list[Tensor]

    def held(self) -> list[Tensor]:
        """The tensors the cache keeps (and counts)."""
        return self.groups


class CachedEmpiricalFisher(ProductKind):
    """F_b v = (1/n_b) sum_i g_i (g_i . v), from the batch's kept per-sample gradients."""

    mode = "cached"
    keeps_graph = True

    def prepare(self, x: Tensor, y: Tensor) -> PerSampleGradients:
        """One batch's per-sample gradients, a matrix per parameter group."""
        model, loss_fn = self.model, self.loss_fn

        def sample_loss(params: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
            return loss_fn(functional_call(model, params, (xi.unsqueeze(0),)), yi.unsqueeze(0))

        primals = self.primals([name for group in self.groups for name in group])
        with torch.no_grad():
            grads = vmap(grad(sample_loss), in_dims=(None, 0, 0), randomness="different")(primals, x, y)
        return PerSampleGradients([self.flat(grads, group, len(x)) for group in self.groups])

    def apply(self, graph: PerSampleGradients, T: Tensor, group: int) -> Tensor:
        """Group ``group``'s F_b v for every lane of ``T`` (lanes, n)."""
        G = graph.groups[group]
        return (T @ G.T) @ G / G.shape[0]


class EmpiricalFisher(Curvature):
    """The mean over samples of the outer products of per-sample loss gradients."""

    name = "empirical_fisher"
    kinds = (CachedEmpiricalFisher,)

    @staticmethod
    def batch_matrix(outputs: Outputs, loss_fn: LossFn, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The dense (n, n) empirical Fisher of the batch: the mean of its per-sample gradients' outer products."""
        def losses(t: Tensor) -> Tensor:
            return torch.stack([loss_fn(outputs(t, x[i : i + 1]), y[i : i + 1]) for i in range(len(x))])

        J = jacobian(losses, theta)  # (n_b, n): row i is g_i
        return J.T @ J / len(x)
