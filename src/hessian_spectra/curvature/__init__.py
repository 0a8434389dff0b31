"""The curvature engine: one operator for Hessian/GGN products over a dataset, and algorithms that see only it.

Operator: ``CurvatureOperator`` (any parameter subset or layer blocks; its product kinds in ``products.py`` and
``cached.py``, the default reusing each batch's first-order graph under a memory budget), and
``ShiftedOperator``. Algorithms: ``lanczos`` (top-k / bottom-k with residuals), ``lanczos_tridiagonal``
(raw lanes), ``slq`` (spectral densities), ``hutchinson`` / ``hutchpp`` (trace), ``frobenius``,
``power_iteration``, and dense forms for small problems (``dense_hessian``: the test oracle). What "converged"
means for any of their eigenvalues: ``relative_residual`` within a tolerance (``converged_within``).
"""

from hessian_spectra.curvature.cache import set_default_memory_budget
from hessian_spectra.curvature.convergence import converged_within, relative_residual
from hessian_spectra.curvature.dense import dense_eigh, dense_hessian, dense_matrix
from hessian_spectra.curvature.lanczos import LanczosResult, LanczosRun, lanczos, lanczos_tridiagonal
from hessian_spectra.curvature.operator import (
    CurvatureOperator,
    NondeterminismError,
    Operator,
    ShiftedOperator,
    eval_mode,
    make_batches,
    set_default_product_mode,
)
from hessian_spectra.curvature.power import PowerResult, power_iteration
from hessian_spectra.curvature.probes import random_probes
from hessian_spectra.curvature.slq import SpectralDensity, slq, smooth_density
from hessian_spectra.curvature.trace import Estimate, frobenius, hutchinson, hutchpp

__all__ = [
    "CurvatureOperator",
    "Estimate",
    "LanczosResult",
    "LanczosRun",
    "NondeterminismError",
    "Operator",
    "PowerResult",
    "ShiftedOperator",
    "SpectralDensity",
    "converged_within",
    "dense_eigh",
    "dense_hessian",
    "dense_matrix",
    "eval_mode",
    "frobenius",
    "hutchinson",
    "hutchpp",
    "lanczos",
    "lanczos_tridiagonal",
    "make_batches",
    "power_iteration",
    "random_probes",
    "relative_residual",
    "set_default_memory_budget",
    "set_default_product_mode",
    "slq",
    "smooth_density",
]
