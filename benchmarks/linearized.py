"""Prototype of a proposed engine change: Hessian products that reuse each batch's primal computation.

Every product of ``CurvatureOperator`` re-runs the primal forward and backward pass of every batch, although
the parameters and batches do not change during an algorithm: a third of the FLOPs of a single-probe product.
Here ``torch.func.linearize`` traces each batch's gradient once and constant-folds everything that does not
depend on the tangent (the folding runs on the first call, made here with a zero tangent), so that a product
runs only the tangent computation. The cost: tracing once per batch,
and memory for the folded constants (about the batch's activations and back-propagated signals). It is an
``Operator``, so the engine's ``lanczos`` and ``slq`` run on it unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, linearize, vmap

from hessian_spectra.curvature import Operator, eval_mode


class LinearizedHessian(Operator):
    """Hessian of the mean cross-entropy over ``batches`` w.r.t. all trainable parameters, one segment."""

    def __init__(self, model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]], max_lanes: int = 8) -> None:
        super().__init__()
        primals = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
        self.names = list(primals)
        self.shapes = [p.shape for p in primals.values()]
        self.sizes = [p.numel() for p in primals.values()]
        n = sum(self.sizes)
        self.shape = (n, n)
        self.segments = ((0, n),)
        self.device = next(iter(primals.values())).device
        self.compute_dtype = next(iter(primals.values())).dtype
        self.max_lanes = max_lanes
        self.num_data = sum(x.shape[0] for x, _ in batches)
        self.tangent_fns = []
        with eval_mode(model), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # linearize's tracer warns about deprecated jit internals
            for x, y in batches:
                grad_fn = grad(lambda p, x=x, y=y: F.cross_entropy(functional_call(model, p, (x,)), y))
                tangent_fn = linearize(grad_fn, primals)[1]
                tangent_fn({name: torch.zeros_like(p) for name, p in primals.items()})  # folds the constants
                self.tangent_fns.append((x.shape[0], tangent_fn))

    def _tangents(self, chunk: Tensor) -> dict[str, Tensor]:
        lanes = chunk.shape[0]
        parts = chunk.split(self.sizes, dim=1)
        return {name: part.reshape(lanes, *shape) for name, part, shape in zip(self.names, parts, self.shapes)}

    def _matmat(self, V: Tensor) -> Tensor:
        VT = V.T.to(self.compute_dtype)
        result = torch.zeros(VT.shape[0], self.shape[0], dtype=torch.float64, device=self.device)
        for start in range(0, VT.shape[0], self.max_lanes):
            chunk = VT[start : start + self.max_lanes]
            lanes = chunk.shape[0]
            tangents = self._tangents(chunk)
            for n_b, tangent_fn in self.tangent_fns:
                if lanes == 1:
                    out = tangent_fn({name: t[0] for name, t in tangents.items()})
                else:
                    out = vmap(tangent_fn)(tangents)
                flat = torch.cat([out[name].reshape(lanes, -1) for name in self.names], dim=1)
                result[start : start + lanes] += flat.to(torch.float64) * n_b
        result /= self.num_data
        return result.T
