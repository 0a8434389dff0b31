"""One object, three calls: the Hessian of a model's average loss over fixed data (``Hessian``).

A thin front to the curvature engine (``hessian_spectra.curvature``) for users of PyHessian's
``hessian(model, criterion, data=(x, y))``: it builds one ``CurvatureOperator`` and runs ``lanczos``,
``hutchinson`` and ``slq`` on it, returning their own result objects (eigenvalues with residuals and converged
flags, estimates with standard errors, densities with their quadrature). Defaults are measured in
``benchmarks/SIDE_BY_SIDE.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from hessian_spectra.curvature import (
    CurvatureOperator,
    Estimate,
    LanczosResult,
    SpectralDensity,
    hutchinson,
    lanczos,
    make_batches,
    slq,
)
from hessian_spectra.curvature.products import Batch

# Chosen by measurement (benchmarks/SIDE_BY_SIDE.md, section 1: a CNN with BatchNorm on digits, 2 CPU threads).
BATCH_SIZE = 512  # samples per product pass: larger passes cost less per sample, with little gain beyond 512
PROBE_BATCH = 4  # probes per product pass in trace(): the cheapest per probe on 256 images; 16 cost more than 1
TOL = 1e-3  # relative Ritz residual: eigenvalues come out far closer (Ritz values converge quadratically)


class Hessian:
    """The Hessian (or another registered curvature: ``curvature="ggn"``, the generalised Gauss-Newton, or
    ``"empirical_fisher"``) of the average of ``loss`` over ``data`` with respect to the model's trainable parameters
    (or ``params``, a list of parameter names; or ``blocks``, for the block-diagonal Hessian of those parameters, see
    ``layer_blocks``), in eval mode.

    ``data`` is ``(x, y)`` (split into batches of ``batch_size`` samples) or a list of ``(x, y)`` batches;
    ``loss(outputs, y)`` returns the batch mean (default: cross-entropy, PyHessian's ``nn.CrossEntropyLoss()``).
    Every call is seeded (``seed``), so a repeated call gives the same numbers. ``operator`` is the engine's
    operator, for its other algorithms (``power_iteration``, ``hutchpp``, ``frobenius``, ...).
    """

    def __init__(
        self,
        model: nn.Module,
        data: tuple[Tensor, Tensor] | Sequence[Batch],
        loss: Callable[[Tensor, Tensor], Tensor] | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        params: Sequence[str] | None = None,
        curvature: str = "hessian",
        blocks: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.model, self.loss, self.batch_size, self.curvature, self.seed = model, loss, batch_size, curvature, seed
        self.batches = _batches(data, batch_size)
        self.operator = CurvatureOperator(
            model, self.batches, loss_fn=loss, curvature=curvature, params=params, blocks=blocks
        )

    @property
    def blocks(self) -> list[str] | None:
        """The layer blocks of a block-diagonal Hessian (``layer_blocks``), else None."""
        return self.operator.blocks

    def eigenvalues(
        self, k: int = 5, *, which: str = "LA", tol: float = TOL, max_steps: int = 200, eigenvectors: bool = False
    ) -> LanczosResult:
        """The top ``k`` (``which="SA"``: bottom ``k``) eigenvalues by Lanczos in float64, each with its residual
        ``||Hv - lambda v||`` and ``converged`` (relative residual within ``tol``)."""
        return lanczos(
            self.operator, k=k, which=which, tol=tol, max_steps=max_steps, seed=self.seed, eigenvectors=eigenvectors
        )

    def trace(self, probes: int = 100, *, probe_batch: int = PROBE_BATCH) -> Estimate:
        """Hutchinson's estimate of tr(H) from ``probes`` Rademacher probes, with its standard error."""
        return hutchinson(self.operator, probes, seed=self.seed, batch=probe_batch)

    def density(self, steps: int = 100, probes: int = 1) -> SpectralDensity | list[SpectralDensity]:
        """The spectral density by stochastic Lanczos quadrature (``steps`` Lanczos steps from each of ``probes``
        random vectors); one per block of a block-diagonal Hessian."""
        densities = slq(self.operator, num_probes=probes, num_steps=steps, seed=self.seed)
        return densities if self.blocks is not None else densities[0]

    def layer_blocks(self, names: Sequence[str] | None = None) -> Hessian:
        """The block-diagonal Hessian of the layer blocks ``names`` (default: every Conv2d/Linear weight): the same
        three calls give one row (eigenvalues), entry (trace) or density per block, in ``blocks`` order."""
        from hessian_spectra.models import layer_blocks

        return Hessian(
            self.model,
            self.batches,
            self.loss,
            batch_size=self.batch_size,
            curvature=self.curvature,
            blocks=list(names) if names is not None else layer_blocks(self.model),
            seed=self.seed,
        )


def _batches(data: tuple[Tensor, Tensor] | Iterable[Batch], batch_size: int) -> list[Batch]:
    """``(x, y)`` split into batches, or the batches given, as a list (the operator keeps their graphs)."""
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"data: x and y must be non-empty and of equal length ({len(x)} vs {len(y)})")
        return make_batches(x, y, batch_size)
    batches = list(data)
    if not batches:
        raise ValueError("data: give (x, y) or a non-empty list of (x, y) batches")
    return batches
