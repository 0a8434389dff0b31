"""Gaussian smoothing of stochastic Lanczos quadrature (SLQ) nodes and weights into a density on a grid (torch-free,
so that the matching of spectra can rebuild a density from part of its probes)."""

from __future__ import annotations

import numpy as np

PAD_SIGMAS = 5.0


def trapezoid(values: np.ndarray, grid: np.ndarray) -> float:
    """Trapezoid-rule integral of ``values`` on ``grid``."""
    return float(np.sum(0.5 * (values[1:] + values[:-1]) * np.diff(grid)))


def gaussian_density(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """The sum over probes of Gaussians of width ``sigma`` at ``nodes`` (probes, steps) weighted by ``weights``, on
    ``grid``, normalised so that its trapezoid integral on the grid is exactly 1."""
    density = np.zeros(len(grid))
    for node_row, weight_row in zip(np.atleast_2d(nodes), np.atleast_2d(weights)):
        z = (grid[:, None] - node_row[None, :]) / sigma
        density += np.exp(-0.5 * z**2) @ weight_row
    return density / trapezoid(density, grid)


def node_range(nodes: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The lowest and highest node carrying weight."""
    valid = weights > 0
    return float(nodes[valid].min()), float(nodes[valid].max())


def smooth_density(
    nodes: np.ndarray, weights: np.ndarray, grid_points: int = 1024, sigma_rel: float = 0.01
) -> tuple[np.ndarray, np.ndarray, float]:
    """Average of Gaussians of width ``sigma = sigma_rel * (max - min node)`` over probes, on a grid padded by
    ``PAD_SIGMAS`` sigmas; normalised so that its trapezoid integral on the grid is exactly 1."""
    lo, hi = node_range(nodes, weights)
    width = hi - lo
    if width <= 0:
        width = max(abs(hi), 1.0)
    sigma = sigma_rel * width
    grid = np.linspace(lo - PAD_SIGMAS * sigma, hi + PAD_SIGMAS * sigma, grid_points)
    return grid, gaussian_density(nodes, weights, grid, sigma), sigma


def grid_sigma(grid: np.ndarray, nodes: np.ndarray, weights: np.ndarray) -> float:
    """The width ``smooth_density`` used for ``grid``: the grid spans the nodes' range plus ``PAD_SIGMAS`` sigmas on
    each side."""
    lo, hi = node_range(nodes, weights)
    return float((grid[-1] - grid[0]) - (hi - lo)) / (2 * PAD_SIGMAS)
