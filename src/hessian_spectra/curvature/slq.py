"""Spectral density by stochastic Lanczos quadrature (SLQ), one density per segment of the operator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hessian_spectra.curvature.lanczos import lanczos_tridiagonal
from hessian_spectra.curvature.probes import random_probes
from hessian_spectra.smoothing import smooth_density, trapezoid  # noqa: F401 (trapezoid: re-exported)


@dataclass
class SpectralDensity:
    """Raw quadrature (``nodes``, ``weights``: (probes, steps), weights summing to 1 per probe; lanes that
    stopped early are padded with their last node at weight 0) and its Gaussian smoothing on ``grid``."""

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float
    dim: int
    steps: int
    products: int

    def moment(self, power: int) -> tuple[float, float]:
        """Estimate of tr(H^power) / n and its standard error over probes (NaN with one probe)."""
        per_probe = np.sum(self.weights * self.nodes**power, axis=1)
        stderr = per_probe.std(ddof=1) / math.sqrt(len(per_probe)) if len(per_probe) > 1 else math.nan
        return float(per_probe.mean()), float(stderr)


def slq(
    op,
    num_probes: int = 1,
    num_steps: int = 100,
    grid_points: int = 1024,
    sigma_rel: float = 0.01,
    distribution: str = "rademacher",
    seed: int | torch.Generator | None = 0,
) -> list[SpectralDensity]:
    """Spectral density of every segment of ``op`` (one list entry per segment): ``num_probes`` normalised
    probes, ``num_steps`` fully reorthogonalised Lanczos steps each, all lanes in lockstep."""
    V0 = random_probes(op, num_probes, distribution, seed, normalise=True)
    run = lanczos_tridiagonal(op, V0, num_steps)
    steps = run.alphas.shape[2]
    densities = []
    for s, (lo, hi) in enumerate(op.segments):
        nodes = np.zeros((num_probes, steps))
        weights = np.zeros((num_probes, steps))
        for j in range(num_probes):
            theta, w = run.ritz(s, j)
            nodes[j, : len(theta)] = theta
            nodes[j, len(theta) :] = theta[-1]
            weights[j, : len(w)] = w
        grid, density, sigma = smooth_density(nodes, weights, grid_points, sigma_rel)
        densities.append(
            SpectralDensity(nodes, weights, grid, density, sigma, hi - lo, int(run.lengths[s].max()), run.products)
        )
    return densities
