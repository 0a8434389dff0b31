"""Power iteration with HessianFlow / PyHessian's settings: the estimate the source studies report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hessian_spectra.curvature.probes import random_probes, segment_dot, squeeze_segments


@dataclass
class PowerResult:
    """Rayleigh quotient ``eigenvalue`` of unit vector ``eigenvector`` (n,), with ``residual`` ||Hv - lambda v||
    of that same pair, per segment (scalars for an ordinary operator). ``stopped``: PyHessian's stopping rule
    fired (the relative change of the estimate fell below ``tol`` before ``max_iter`` iterations); it says nothing
    about convergence, which only the residual tells (``curvature.convergence``)."""

    eigenvalue: np.ndarray | float
    eigenvector: Tensor
    residual: np.ndarray | float
    stopped: np.ndarray | bool
    iterations: int
    products: int


def power_iteration(op, max_iter: int = 10, tol: float = 1e-2, seed: int | torch.Generator | None = 0) -> PowerResult:
    """Iterate v <- Hv / ||Hv|| from a normalised Gaussian start; stop when every segment's Rayleigh quotient
    changes by less than ``tol`` relative to the previous one (PyHessian: |new - old| / (|old| + 1e-6)).

    Unlike PyHessian, which returns the previous estimate with the next vector, the result is a consistent
    pair: the last Rayleigh quotient, the vector it belongs to, and their residual."""
    products0 = op.products
    v = random_probes(op, 1, "gaussian", seed, normalise=True)
    previous = None
    stopped = np.zeros(len(op.segments), dtype=bool)
    for iteration in range(1, max_iter + 1):
        Hv = op.matmat(v)
        value = segment_dot(v, Hv, op.segments)[:, 0]
        current = value.cpu().numpy()
        if previous is not None:
            stopped = np.abs(current - previous) / (np.abs(previous) + 1e-6) < tol
        if stopped.all() or iteration == max_iter:
            break
        previous = current
        nxt = Hv.clone()
        for lo, hi in op.segments:
            norm = nxt[lo:hi].norm()
            nxt[lo:hi] /= torch.where(norm > 0, norm, torch.ones_like(norm))
        v = nxt
    residual = (
        torch.stack([(Hv[lo:hi, 0] - value[s] * v[lo:hi, 0]).norm() for s, (lo, hi) in enumerate(op.segments)])
        .cpu()
        .numpy()
    )
    return PowerResult(
        eigenvalue=squeeze_segments(op, current),
        eigenvector=v[:, 0],
        residual=squeeze_segments(op, residual),
        stopped=squeeze_segments(op, stopped),
        iterations=iteration,
        products=op.products - products0,
    )
