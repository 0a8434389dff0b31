"""Cached products: each batch's first-order graph is built once, and each product is one backward pass through it.

Hessian: the graph of g = dL/dtheta (``torch.autograd.grad(..., create_graph=True)``); H v = d<g, v>/dtheta. GGN:
the graphs of the outputs z(theta), of J^T u (linear in a dummy u, so its backward in u gives J v) and of dL/dz;
G v = J^T (D^2_z L) J v. A product then skips the primal forward and backward that forward-over-reverse and
plain double-backward redo every time (a third of their FLOPs). Lanes are batched by ``torch.func.vmap`` over
``torch.autograd.grad``, measured faster on the CPU than autograd's ``is_grads_batched`` and than a loop. All
groups (layer blocks) share one graph per batch: a group's product differentiates its own part of g w.r.t. its
own parameters only. Batch norm in eval mode enters the graph as the per-channel affine map it is
(``AffineBatchNorm``): the double backward of ``native_batch_norm_backward`` took a quarter of a product on
vgg11_bn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap
from torch.overrides import TorchFunctionMode

from hessian_spectra.curvature.products import ProductKind, grad_of_dot


def affine_batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """``F.batch_norm``, written as ``input * scale + shift`` per channel when it uses running statistics."""
    if training or running_mean is None or running_var is None:
        return F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    scale = torch.rsqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    shape = (1, -1) + (1,) * (input.dim() - 2)
    return input * scale.reshape(shape) + shift.reshape(shape)


class AffineBatchNorm(TorchFunctionMode):
    """Inside this mode ``F.batch_norm`` in eval mode is ``affine_batch_norm``: the same function of the input,
    weight and bias, whose graph is two products and a sum."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return (affine_batch_norm if func is F.batch_norm else func)(*args, **(kwargs or {}))


@dataclass
class HessianGraph:
    """One batch's parameters (leaves) and the gradient of its loss with their graph."""

    leaves: dict[str, Tensor]
    grads: dict[str, Tensor]

    def held(self) -> list[Tensor]:
        """The tensors whose graph the cache keeps (and counts)."""
        return list(self.grads.values())


@dataclass
class GGNGraph:
    """One batch's leaves, outputs ``z``, ``J^T u`` with its dummy ``u``, and dL/dz at a detached copy ``zd``."""

    leaves: dict[str, Tensor]
    z: Tensor
    u: Tensor
    jtu: dict[str, Tensor]
    zd: Tensor
    gz: Tensor

    def held(self) -> list[Tensor]:
        """The tensors whose graph the cache keeps (and counts)."""
        return [self.z, self.u, *self.jtu.values(), self.zd, self.gz]


class Cached(ProductKind):
    """What the cached kinds share: leaves for every group's parameters, lanes batched by vmap."""

    mode = "cached"
    keeps_graph = True

    def leaves(self) -> tuple[dict[str, Tensor], list[str]]:
        """Every parameter detached, the groups' parameters as leaves that require grad; and the groups' names."""
        names = [name for group in self.groups for name in group]
        wanted = set(names)
        params = {n: p.detach().requires_grad_(n in wanted) for n, p in self.model.named_parameters()}
        return params, names

    def outputs(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """The model's outputs at ``params``, batch norm as an affine map."""
        with AffineBatchNorm():
            return functional_call(self.model, params, (x,))

    @staticmethod
    def lanes(fn: Callable[..., list[Tensor]], tangents: Sequence[Tensor]) -> list[Tensor]:
        """``fn(*one lane's tangents)`` for every lane of ``tangents`` (each (lanes, *shape)), stacked."""
        if tangents[0].shape[0] == 1:
            return [out.unsqueeze(0) for out in fn(*(t[0] for t in tangents))]
        return list(vmap(fn)(*tangents))


class CachedHessian(Cached):
    """H v = d<g, v>/dtheta through the kept graph of the gradient g."""

    def prepare(self, x: Tensor, y: Tensor) -> HessianGraph:
        """One batch's gradient with its graph, over leaves for the groups' parameters."""
        params, names = self.leaves()
        inputs = [params[name] for name in names]
        with torch.enable_grad():
            loss = self.loss_fn(self.outputs(params, x), y)
            grads = torch.autograd.grad(loss, inputs, create_graph=True, materialize_grads=True)
        self.check_once(grads)
        return HessianGraph(dict(zip(names, inputs)), dict(zip(names, grads)))

    def apply(self, graph: HessianGraph, T: Tensor, group: int) -> Tensor:
        """Group ``group``'s H v for every lane of ``T`` (lanes, n), through the batch's kept graph."""
        names = self.groups[group]
        outputs, inputs = [graph.grads[n] for n in names], [graph.leaves[n] for n in names]
        out = self.lanes(lambda *t: grad_of_dot(outputs, t, inputs), list(self.split(T, names).values()))
        return self.flat(out, names, T.shape[0])


class CachedGGN(Cached):
    """G v = J^T (D^2_z L) (J v) through the kept graphs of z, J^T u and dL/dz."""

    def prepare(self, x: Tensor, y: Tensor) -> GGNGraph:
        """One batch's outputs, ``J^T u`` and dL/dz, with their graphs."""
        params, names = self.leaves()
        inputs = [params[name] for name in names]
        with torch.enable_grad():
            z = self.outputs(params, x)
            u = torch.zeros_like(z, requires_grad=True)
            jtu = torch.autograd.grad(z, inputs, u, create_graph=True, materialize_grads=True)
            zd = z.detach().requires_grad_(True)
            gz = torch.autograd.grad(self.loss_fn(zd, y), zd, create_graph=True)[0]
        self.check_once([*jtu, gz])
        return GGNGraph(dict(zip(names, inputs)), z, u, dict(zip(names, jtu)), zd, gz)

    def apply(self, graph: GGNGraph, T: Tensor, group: int) -> Tensor:
        """Group ``group``'s G v = J^T H_z J v for every lane of ``T`` (lanes, n), through the batch's kept graphs."""
        names = self.groups[group]
        jtu, inputs = [graph.jtu[n] for n in names], [graph.leaves[n] for n in names]

        def lane(*t: Tensor) -> list[Tensor]:
            jv = grad_of_dot(jtu, t, [graph.u])[0]
            hjv = grad_of_dot([graph.gz], [jv], [graph.zd])[0]
            return grad_of_dot([graph.z], [hjv], inputs)

        out = self.lanes(lane, list(self.split(T, names).values()))
        return self.flat(out, names, T.shape[0])
