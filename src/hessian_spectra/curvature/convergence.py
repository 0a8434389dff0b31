"""What "converged" means for an eigenvalue estimate anywhere in the pipeline: its relative residual
||Hv - lambda v|| / |lambda| is within the stated tolerance (an algorithm's own stopping rule is reported apart)."""

from __future__ import annotations

import numpy as np


def relative_residual(value, residual):
    """||Hv - lambda v|| / |lambda| (elementwise): 0 for an exact pair (residual 0), inf for lambda = 0 with a
    nonzero residual, NaN where either is NaN."""
    value, residual = np.asarray(value, dtype=float), np.asarray(residual, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(residual == 0, 0.0, residual / np.abs(value))
    relative = np.where(np.isnan(value) | np.isnan(residual), np.nan, relative)
    return float(relative) if relative.ndim == 0 else relative


def converged_within(value, residual, tolerance: float):
    """Whether each estimate's relative residual is at most ``tolerance`` (False where it is NaN)."""
    relative = np.asarray(relative_residual(value, residual))
    ok = relative <= tolerance
    return bool(ok) if ok.ndim == 0 else ok
