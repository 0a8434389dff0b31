"""How well each layer block's Hessian spectrum matches the full Hessian's (LayerHessians, seed 004).

Two distances per run, layer and epoch: the source's (its log-density vectors compared as samples, the
eigenvalue axis ignored) and the Wasserstein-1 distance between the two spectral measures on the eigenvalue
axis, each measure divided by its own spectral radius. Each distance carries a standard error from the density
probes (a jackknife over each spectrum's probes; none from a single probe). Torch-free (numpy, scipy, pandas): it
reads the npz files of the ``spectrum`` command, one per epoch, named ``epoch_NNNN.npz``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hessian_spectra.smoothing import gaussian_density, grid_sigma
from hessian_spectra.tables import FULL, read_arrays, require_arrays

SOURCE = "source"
SPECTRAL_W1 = "spectral_w1"
METRICS = (SOURCE, SPECTRAL_W1)

_EPOCH_NAME = re.compile(r"epoch_(\d+)$")


@dataclass(frozen=True)
class Spectrum:
    """One block's SLQ result: Ritz ``nodes`` and ``weights`` (probes, steps; each probe's weights sum to 1)
    and the smoothed ``density`` on ``grid``, Gaussians of width ``sigma`` (NaN where the file predates it)."""

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float = math.nan


def load_spectra(path: str | Path) -> dict[str, Spectrum]:
    """Block name -> spectrum, in the file's order (``full`` first, then the layer blocks in forward order)."""
    npz = read_arrays(path)
    if "blocks" not in npz:
        raise ValueError(f"{path}: no densities (write it with `hessian-spectra spectrum --density-steps N`)")
    fields = [f"{name}_{i}" for i in range(len(npz["blocks"])) for name in ("nodes", "weights", "grid", "density")]
    require_arrays(path, npz, fields)
    return {
        str(block): Spectrum(npz[f"nodes_{i}"], npz[f"weights_{i}"], npz[f"grid_{i}"], npz[f"density_{i}"],
                             float(npz[f"sigma_{i}"]) if f"sigma_{i}" in npz else math.nan)
        for i, block in enumerate(npz["blocks"])
    }


def epoch_of(path: str | Path) -> int:
    """The epoch of a spectrum file named ``epoch_NNNN.npz``."""
    match = _EPOCH_NAME.search(Path(path).stem)
    if match is None:
        raise ValueError(f"{path}: a spectrum file must be named epoch_NNNN.npz")
    return int(match.group(1))


def layer_blocks_of(spectra: Mapping[str, Spectrum]) -> list[str]:
    """The layer blocks of one epoch's spectra (every block but ``full``), checking that ``full`` is there."""
    if FULL not in spectra:
        raise ValueError(f"no full-Hessian spectrum among the blocks {', '.join(spectra)}")
    return [block for block in spectra if block != FULL]


def source_transform(density: np.ndarray, eps: float | None = None) -> np.ndarray:
    """The source's ``density_transform``: log(p + eps), min-max scaled to [0, 1], normalised to sum 1.

    ``eps=None`` is the source's rule: zeros are replaced by the smallest positive value, others left alone.
    """
    p = np.asarray(density, dtype=np.float64)
    if eps is None:
        positive = p[p > 0]
        if positive.size == 0:
            raise ValueError("density has no positive value")
        p = np.where(p == 0, positive.min(), p)
    else:
        p = p + eps
    logp = np.log(p)
    lo, hi = logp.min(), logp.max()
    if not np.isfinite(lo) or hi <= lo:
        raise ValueError("density is constant or not positive: its log cannot be min-max scaled")
    scaled = (logp - lo) / (hi - lo)
    return scaled / scaled.sum()


def _wasserstein(*args: np.ndarray) -> float:
    """scipy's 1-D Wasserstein distance (imported here: the registry imports this module for its names when the
    workflow is parsed, and scipy.stats takes 0.4 s to import)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(*args))


def source_distance(density_a: np.ndarray, density_b: np.ndarray, eps: float | None = None) -> float:
    """The source's distance: scipy's 1-D Wasserstein distance between the two transformed density vectors,
    their values treated as samples (the eigenvalue grid plays no part)."""
    return _wasserstein(source_transform(density_a, eps), source_transform(density_b, eps))


def _measure(nodes: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened atoms of the probe-averaged spectral measure (total mass 1)."""
    nodes, weights = np.atleast_2d(nodes), np.atleast_2d(weights)
    if nodes.shape != weights.shape:
        raise ValueError(f"nodes {nodes.shape} and weights {weights.shape} differ in shape")
    if np.any(weights < 0) or not np.all(weights.sum(axis=1) > 0):
        raise ValueError("quadrature weights must be non-negative with a positive sum per probe")
    weights = weights / weights.sum(axis=1, keepdims=True) / weights.shape[0]
    return nodes.ravel(), weights.ravel()


def spectral_scale(nodes: np.ndarray, weights: np.ndarray) -> float:
    """Spectral radius estimate: the largest |Ritz node| carrying weight (extreme Ritz values converge first)."""
    values, mass = _measure(nodes, weights)
    scale = float(np.abs(values[mass > 0]).max())
    if scale == 0:
        raise ValueError("the spectrum is zero: it has no scale")
    return scale


def spectral_w1(nodes_a: np.ndarray, weights_a: np.ndarray, nodes_b: np.ndarray, weights_b: np.ndarray) -> float:
    """Wasserstein-1 distance between two spectral measures on the eigenvalue axis (sum_j w_j delta(theta_j),
    averaged over probes)."""
    values_a, mass_a = _measure(nodes_a, weights_a)
    values_b, mass_b = _measure(nodes_b, weights_b)
    return _wasserstein(values_a, values_b, mass_a, mass_b)


def scaled_spectral_w1(a: Spectrum, b: Spectrum) -> float:
    """``spectral_w1`` after dividing each spectrum's eigenvalues by its own ``spectral_scale``: a distance
    between shapes in [0, 2], blind to the blocks' different curvature magnitudes."""
    return spectral_w1(
        a.nodes / spectral_scale(a.nodes, a.weights), a.weights, b.nodes / spectral_scale(b.nodes, b.weights), b.weights
    )


def without_probe(spectrum: Spectrum, probe: int) -> Spectrum:
    """``spectrum`` rebuilt from all its probes but ``probe``: the same grid and smoothing width."""
    keep = np.arange(len(spectrum.nodes)) != probe
    nodes, weights = spectrum.nodes[keep], spectrum.weights[keep]
    sigma = grid_sigma(spectrum.grid, spectrum.nodes, spectrum.weights)
    return Spectrum(nodes, weights, spectrum.grid, gaussian_density(nodes, weights, spectrum.grid, sigma))


def jackknife_stderr(distance: Callable[[Spectrum, Spectrum], float], a: Spectrum, b: Spectrum) -> float:
    """Standard error of ``distance(a, b)`` over the density probes: a delete-one jackknife over each spectrum's
    probes (independent draws), the two variances added; NaN unless both spectra have at least two probes."""
    variance = 0.0
    for side in (0, 1):
        spectrum = (a, b)[side]
        count = len(spectrum.nodes)
        if count < 2:
            return math.nan
        values = np.array([
            distance(without_probe(a, j), b) if side == 0 else distance(a, without_probe(b, j)) for j in range(count)
        ])
        variance += (count - 1) / count * float(np.sum((values - values.mean()) ** 2))
    return math.sqrt(variance)


def layer_distances(spectra: Mapping[str, Spectrum], eps: float | None = None) -> list[dict]:
    """Both distances between every layer block's spectrum and the full one: rows of (layer, block, metric,
    distance, distance_stderr, probes), layers numbered from 1 in the file's order; ``probes`` is the fewer of the
    two densities' SLQ probes (one probe: a single random draw, with no error estimate)."""
    blocks = layer_blocks_of(spectra)
    full = spectra[FULL]
    metrics = {
        SOURCE: lambda a, b: source_distance(a.density, b.density, eps),
        SPECTRAL_W1: scaled_spectral_w1,
    }
    rows = []
    for layer, block in enumerate(blocks, start=1):
        spectrum = spectra[block]
        probes = min(len(spectrum.nodes), len(full.nodes))
        for metric, distance in metrics.items():
            rows.append({"layer": layer, "block": block, "metric": metric, "distance": distance(spectrum, full),
                         "distance_stderr": jackknife_stderr(distance, spectrum, full), "probes": probes})
    return rows


def peak_epochs(table: pd.DataFrame) -> pd.Series:
    """(run, metric) -> the summed epoch whose distance summed over layers is smallest (the earliest on ties)."""
    totals = table[table["summed"]].groupby(["run", "metric", "epoch"])["distance"].sum()
    return totals.groupby(level=["run", "metric"]).idxmin().map(lambda index: index[2])


PROFILE_KINDS = ("wasserstein", "peak")


def layer_profile(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Per run, metric and layer, the figure's y: the distance summed over the summed epochs (``kind="wasserstein"``)
    or at the peak epoch (``kind="peak"``), divided by its maximum over the run's layers; x = (layer-1)/(L-1);
    with the peak epoch, its rule and the first and last epoch it was searched among (``searched_from``,
    ``searched_to``). ``distance_stderr`` adds the epochs' errors in quadrature (their probes are independent
    draws); ``relative_stderr`` is it divided by the same maximum."""
    if kind == "wasserstein":
        picked = table[table["summed"]]
    elif kind == "peak":
        picked = table[table["epoch"] == table["peak_epoch"]]
    else:
        raise ValueError(f"kind must be wasserstein or peak, got {kind!r}")
    keys = ["run", "seed", "model", "dataset", "metric", "layer", "num_layers", "block", "peak_epoch", "peak_rule",
            "probes"]
    grouped = picked.assign(variance=picked["distance_stderr"] ** 2).groupby(keys, as_index=False)
    profile = grouped.agg(distance=("distance", "sum"), variance=("variance", lambda v: v.sum(skipna=False)))
    profile["distance_stderr"] = np.sqrt(profile.pop("variance"))
    searched = table[table["summed"]].groupby("run")["epoch"].agg(searched_from="min", searched_to="max")
    profile = profile.join(searched, on="run")
    largest = profile.groupby(["run", "metric"])["distance"].transform("max")
    profile["relative"] = profile["distance"] / largest
    profile["relative_stderr"] = profile["distance_stderr"] / largest
    depth = (profile["num_layers"] - 1).clip(lower=1)
    profile["depth"] = (profile["layer"] - 1) / depth
    return profile


def layer_profiles(table: pd.DataFrame) -> pd.DataFrame:
    """``layer_profile`` of both kinds as one table with a ``kind`` column (what the match figures draw)."""
    return pd.concat([layer_profile(table, kind).assign(kind=kind) for kind in PROFILE_KINDS], ignore_index=True)
