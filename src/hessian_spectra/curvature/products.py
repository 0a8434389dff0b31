"""Curvature products of one batch's mean loss: one class per kind (curvature x method), behind one interface.

A kind is built once per operator with the model, the loss and the parameter groups (the operator's segments).
``prepare(x, y)`` does the batch's primal work that later products can reuse and returns it as the batch's
*graph*; ``apply(graph, T, group)`` multiplies the rows of ``T`` (lanes, group size), tangents over one group's
parameters, by that group's diagonal block of the curvature. The kinds here recompute everything in every
product (their graph is the batch itself); ``cached.py`` holds the kinds whose graph is worth keeping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vjp, vmap

from hessian_spectra.curvature.graph import check_twice_differentiable

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


def grad_of_dot(outputs: Sequence[Tensor], vectors: Sequence[Tensor], inputs: Sequence[Tensor]) -> list[Tensor]:
    """d/d(inputs) of sum_i <outputs_i, vectors_i>; outputs that do not depend on the inputs contribute zero."""
    live = [i for i, out in enumerate(outputs) if out.requires_grad]
    if not live:
        return [torch.zeros_like(x) for x in inputs]
    return list(
        torch.autograd.grad(
            [outputs[i] for i in live],
            inputs,
            [vectors[i] for i in live],
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
    )


class ProductKind:
    """Products of one curvature by one method (``mode``); ``keeps_graph`` says whether ``prepare`` does reusable
    work. The curvature that owns a kind (``kinds.py``) lists it among its ``kinds``."""

    mode: str
    keeps_graph = False

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, groups: Sequence[Sequence[str]], shapes: dict[str, torch.Size]
    ) -> None:
        self.model, self.loss_fn, self.groups, self.shapes = model, loss_fn, groups, shapes
        self._checked = False

    def check_once(self, roots: Sequence[Tensor]) -> None:
        """``check_twice_differentiable`` on the first graph only: every batch runs the same functions."""
        if not self._checked:
            check_twice_differentiable(roots)
            self._checked = True

    def prepare(self, x: Tensor, y: Tensor) -> object:
        """The batch's reusable work for ``apply`` (here none: the batch itself)."""
        return x, y

    def apply(self, graph: object, T: Tensor, group: int) -> Tensor:  # pragma: no cover - abstract
        """Group ``group``'s products with every lane of ``T`` (lanes, n) on one prepared batch; returns (lanes, n)."""
        raise NotImplementedError

    def primals(self, names: Sequence[str]) -> dict[str, Tensor]:
        """The named parameters, detached."""
        named = dict(self.model.named_parameters())
        return {name: named[name].detach() for name in names}

    def split(self, T: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
        """(lanes, n) flat tangents over ``names`` -> {name: (lanes, *shape)}."""
        sizes = [self.shapes[name].numel() for name in names]
        return {name: part.reshape(T.shape[0], *self.shapes[name]) for name, part in zip(names, T.split(sizes, 1))}

    @staticmethod
    def flat(out: dict[str, Tensor] | Sequence[Tensor], names: Sequence[str], lanes: int) -> Tensor:
        """``out`` (by name or in the order of ``names``) flattened and joined into (lanes, n)."""
        parts = [out[name] for name in names] if isinstance(out, dict) else out
        return torch.cat([part.reshape(lanes, -1) for part in parts], dim=1)


class ForwardOverReverse(ProductKind):
    """``jvp`` of the gradient (or of the GGN's factors), vmapped over lanes: the primal pass runs per product."""

    mode = "forward"

    def lane_fn(self, x: Tensor, y: Tensor, primals: dict[str, Tensor]) -> Callable:  # pragma: no cover - abstract
        """The product of one lane, a function of its tangents by name, on batch ``(x, y)`` at ``primals``."""
        raise NotImplementedError

    def apply(self, graph: Batch, T: Tensor, group: int) -> Tensor:
        """Group ``group``'s products with every lane of ``T``, ``lane_fn`` vmapped over the lanes."""
        (x, y), names = graph, self.groups[group]
        lane = self.lane_fn(x, y, self.primals(names))
        tangents = self.split(T, names)
        with torch.no_grad():
            if T.shape[0] == 1:  # one lane: skip vmap's batching rules
                out = {name: t.unsqueeze(0) for name, t in lane({n: t[0] for n, t in tangents.items()}).items()}
            else:
                out = vmap(lane, randomness="different")(tangents)
        return self.flat(out, names, T.shape[0])


class ForwardHessian(ForwardOverReverse):
    """H v: the ``jvp`` of the gradient."""

    def lane_fn(self, x: Tensor, y: Tensor, primals: dict[str, Tensor]) -> Callable:
        """H t as the ``jvp`` of the gradient."""
        model, loss_fn = self.model, self.loss_fn
        grad_fn = grad(lambda p: loss_fn(functional_call(model, p, (x,)), y))
        return lambda t: jvp(grad_fn, (primals,), (t,))[1]


class ForwardGGN(ForwardOverReverse):
    """G v = J^T (D^2_z L) (J v): a ``jvp`` of the outputs, of dL/dz, then a ``vjp``."""

    def lane_fn(self, x: Tensor, y: Tensor, primals: dict[str, Tensor]) -> Callable:
        """G t = J^T H_z J t: a ``jvp`` through the outputs and the loss's gradient in z, then a ``vjp``."""
        model, loss_fn = self.model, self.loss_fn

        def outputs_of(p: dict[str, Tensor]) -> Tensor:
            return functional_call(model, p, (x,))

        z, vjp_fn = vjp(outputs_of, primals)
        loss_grad_z = grad(lambda zz: loss_fn(zz, y))

        def lane(t: dict[str, Tensor]) -> dict[str, Tensor]:
            jv = jvp(outputs_of, (primals,), (t,))[1]
            hjv = jvp(loss_grad_z, (z,), (jv,))[1]
            return vjp_fn(hjv)[0]

        return lane


class DoubleBackward(ProductKind):
    """Autograd double-backward, one lane at a time: the first-order graph is rebuilt for every product."""

    mode = "double_backward"

    def lanes(self, z: Tensor, y: Tensor, leaves: list[Tensor], tangents: list[list[Tensor]]) -> list[list[Tensor]]:
        """The products of every lane's ``tangents`` from the batch's outputs ``z`` and the ``leaves``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def apply(self, graph: Batch, T: Tensor, group: int) -> Tensor:
        """Group ``group``'s products with every lane of ``T``, the first-order graph built anew for this call."""
        (x, y), names = graph, self.groups[group]
        primals = {name: p.clone().requires_grad_(True) for name, p in self.primals(names).items()}
        leaves = list(primals.values())
        split = self.split(T, names)
        tangents = [[split[name][i] for name in names] for i in range(T.shape[0])]
        with torch.enable_grad():
            results = self.lanes(functional_call(self.model, primals, (x,)), y, leaves, tangents)
        return torch.stack([torch.cat([r.reshape(-1) for r in res]) for res in results])


class DoubleBackwardHessian(DoubleBackward):
    """H v = d<g, v>/dtheta through the gradient g built with its graph."""

    def lanes(self, z: Tensor, y: Tensor, leaves: list[Tensor], tangents: list[list[Tensor]]) -> list[list[Tensor]]:
        """H t per lane: the gradient of <g, t>, g with its graph."""
        g = torch.autograd.grad(self.loss_fn(z, y), leaves, create_graph=True, materialize_grads=True)
        self.check_once(g)
        return [grad_of_dot(g, t, leaves) for t in tangents]


class DoubleBackwardGGN(DoubleBackward):
    """G v = J^T (D^2_z L) (J v), J v as the backward in a dummy u of J^T u."""

    def lanes(self, z: Tensor, y: Tensor, leaves: list[Tensor], tangents: list[list[Tensor]]) -> list[list[Tensor]]:
        """G t = J^T H_z J t per lane, by double backward through ``J^T u`` with a dummy ``u``."""
        u = torch.zeros_like(z, requires_grad=True)
        jtu = torch.autograd.grad(z, leaves, u, create_graph=True, materialize_grads=True)
        zd = z.detach().requires_grad_(True)
        gz = torch.autograd.grad(self.loss_fn(zd, y), zd, create_graph=True)[0]
        self.check_once([*jtu, gz])
        results = []
        for t in tangents:
            jv = grad_of_dot(jtu, t, [u])[0]
            hjv = torch.autograd.grad(gz, zd, jv, retain_graph=True)[0]
            results.append(torch.autograd.grad(z, leaves, hjv, retain_graph=True, materialize_grads=True))
        return results
