"""Stochastic trace and Frobenius-norm estimates, per segment of the operator, each with a standard error."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hessian_spectra.curvature.probes import make_generator, random_probes, segment_dot, squeeze_segments


@dataclass
class Estimate:
    """``value`` and ``stderr`` (NaN with fewer than two samples) per segment (scalars for an ordinary
    operator); ``samples`` (segments, probes) are the per-probe terms whose mean the estimate is built on."""

    value: np.ndarray | float
    stderr: np.ndarray | float
    products: int
    samples: np.ndarray


def _mean_stderr(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    count = samples.shape[1]
    stderr = samples.std(axis=1, ddof=1) / math.sqrt(count) if count > 1 else np.full(len(samples), np.nan)
    return samples.mean(axis=1), stderr


def _probe_samples(
    op, num_probes: int, kind: str, seed: int | torch.Generator | None, batch: int, square: bool
) -> tuple[np.ndarray, int]:
    """Per segment and probe, v^T H v (``square``: ||H v||^2) for ``num_probes`` probes of ``kind`` drawn and
    multiplied ``batch`` at a time; and the products that took."""
    if num_probes < 1:
        raise ValueError("num_probes must be positive")
    gen, products0 = make_generator(seed), op.products
    parts = []
    for start in range(0, num_probes, batch):
        V = random_probes(op, min(batch, num_probes - start), kind, gen)
        HV = op.matmat(V)
        parts.append(segment_dot(HV if square else V, HV, op.segments))
    return torch.cat(parts, dim=1).cpu().numpy(), op.products - products0


def _estimate(op, value, stderr, products, samples) -> Estimate:
    return Estimate(squeeze_segments(op, value), squeeze_segments(op, stderr), products, samples)


def hutchinson(op, num_probes: int, seed: int | torch.Generator | None = 0, batch: int = 16) -> Estimate:
    """tr(H) ~ mean of v^T H v over Rademacher probes."""
    samples, products = _probe_samples(op, num_probes, "rademacher", seed, batch, square=False)
    value, stderr = _mean_stderr(samples)
    return _estimate(op, value, stderr, products, samples)


def _orthonormal_columns(Y: torch.Tensor, segments) -> torch.Tensor:
    """Per segment, an orthonormal basis of the columns of Y (zero columns where a segment is too small)."""
    Q = torch.zeros_like(Y)
    for lo, hi in segments:
        q = torch.linalg.qr(Y[lo:hi], mode="reduced")[0]
        Q[lo:hi, : q.shape[1]] = q
    return Q


def _project_out(Q: torch.Tensor, G: torch.Tensor, segments) -> torch.Tensor:
    out = G.clone()
    for lo, hi in segments:
        out[lo:hi] -= Q[lo:hi] @ (Q[lo:hi].T @ G[lo:hi])
    return out


def hutchpp(op, num_products: int, seed: int | torch.Generator | None = 0) -> Estimate:
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with a budget of ``num_products`` products: a third sketches
    the top subspace Q (trace of Q^T H Q exactly), the rest estimate the trace of the projected remainder by
    Hutchinson. The standard error is that of the Hutchinson part."""
    if num_products < 3:
        raise ValueError("hutch++ needs at least 3 products")
    gen, products0 = make_generator(seed), op.products
    sketch = num_products // 3
    rest = num_products - 2 * sketch
    Q = _orthonormal_columns(op.matmat(random_probes(op, sketch, "rademacher", gen)), op.segments)
    exact = segment_dot(Q, op.matmat(Q), op.segments).sum(dim=1)
    G = _project_out(Q, random_probes(op, rest, "rademacher", gen), op.segments)
    samples = segment_dot(G, op.matmat(G), op.segments).cpu().numpy()
    value, stderr = _mean_stderr(samples)
    return _estimate(op, exact.cpu().numpy() + value, stderr, op.products - products0, samples)


def frobenius(op, num_probes: int, seed: int | torch.Generator | None = 0, batch: int = 16) -> Estimate:
    """||H||_F from ||H||_F^2 = E ||H v||^2, v ~ N(0, I); the standard error by the delta method."""
    samples, products = _probe_samples(op, num_probes, "gaussian", seed, batch, square=True)
    squared, stderr_squared = _mean_stderr(samples)
    value = np.sqrt(squared)
    with np.errstate(divide="ignore", invalid="ignore"):
        stderr = np.where(value > 0, stderr_squared / (2 * value), 0.0)
    return _estimate(op, value, stderr, products, samples)
