"""Curvature matrices as types: each class names its product kinds, one per mode, and gives its dense matrix on one
batch, built with ``torch.autograd.functional`` independently of the product kinds (the tests' float64 oracle,
``dense_hessian``). ``registry.py`` lists every curvature by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from torch import Tensor
from torch.autograd.functional import hessian, jacobian

from hessian_spectra.curvature.cached import CachedGGN, CachedHessian
from hessian_spectra.curvature.products import (
    DoubleBackwardGGN,
    DoubleBackwardHessian,
    ForwardGGN,
    ForwardHessian,
    LossFn,
    ProductKind,
)

Outputs = Callable[[Tensor, Tensor], Tensor]  # (flat parameters, inputs) -> the model's outputs


class Curvature:
    """One curvature matrix of the mean loss: its ``name``, its product ``kinds`` and its dense form."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[type[ProductKind], ...]]

    @classmethod
    def modes(cls) -> tuple[str, ...]:
        """The product modes this curvature offers, in the order of ``kinds``."""
        return tuple(kind.mode for kind in cls.kinds)

    @classmethod
    def product_kind(cls, mode: str) -> type[ProductKind]:
        """The kind of products named ``mode``."""
        for kind in cls.kinds:
            if kind.mode == mode:
                return kind
        raise ValueError(f"mode must be one of {cls.modes()} for curvature {cls.name}, got {mode!r}")

    @staticmethod
    def batch_matrix(outputs: Outputs, loss_fn: LossFn, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The (n, n) curvature of the batch's mean loss ``loss_fn(outputs(theta, x), y)`` at ``theta``."""
        raise NotImplementedError  # pragma: no cover - abstract


class Hessian(Curvature):
    """The Hessian of the mean loss."""

    name = "hessian"
    kinds = (CachedHessian, ForwardHessian, DoubleBackwardHessian)

    @staticmethod
    def batch_matrix(outputs: Outputs, loss_fn: LossFn, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The dense (n, n) Hessian of the batch's mean loss."""
        return hessian(lambda t: loss_fn(outputs(t, x), y), theta)


class GGN(Curvature):
    """The generalised Gauss-Newton ``J^T (D^2_z L) J`` of the mean loss, ``J`` the Jacobian of the outputs z."""

    name = "ggn"
    kinds = (CachedGGN, ForwardGGN, DoubleBackwardGGN)

    @staticmethod
    def batch_matrix(outputs: Outputs, loss_fn: LossFn, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The dense (n, n) GGN J^T H_z J of the batch's mean loss."""
        z = outputs(theta, x).detach()
        J = jacobian(lambda t: outputs(t, x).reshape(-1), theta)
        Hz = hessian(lambda zz: loss_fn(zz.view_as(z), y), z.reshape(-1))
        return J.T @ Hz @ J
