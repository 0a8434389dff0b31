"""The curvature engine: one operator for curvature products over a dataset, and algorithms that see only it.

Curvatures are types (``kinds.py``, ``empirical_fisher.py``), registered by name in ``registry.py``: ``Hessian``,
``GGN`` and ``EmpiricalFisher``, each with its product kinds by mode (``products.py``, ``cached.py``; ``cached``,
the default, reuses each batch's first-order graph under a memory budget) and its dense form. Operator:
``CurvatureOperator`` (any registered curvature, parameter subset or layer blocks) and ``ShiftedOperator``.
Algorithms: ``lanczos`` (top-k / bottom-k with residuals), ``lanczos_tridiagonal`` (raw lanes), ``slq`` (spectral
densities), ``hutchinson`` / ``hutchpp`` (trace), ``frobenius``, ``power_iteration``, and dense forms for small
problems (``dense_hessian``, any registered curvature: the test oracle). What "converged" means for any of their
eigenvalues: ``relative_residual`` within a tolerance (``converged_within``).
"""

from hessian_spectra.curvature.cache import set_default_memory_budget
from hessian_spectra.curvature.convergence import converged_within, relative_residual
from hessian_spectra.curvature.dense import dense_eigh, dense_hessian, dense_matrix
from hessian_spectra.curvature.empirical_fisher import EmpiricalFisher
from hessian_spectra.curvature.kinds import GGN, Curvature, Hessian
from hessian_spectra.curvature.lanczos import LanczosResult, LanczosRun, lanczos, lanczos_tridiagonal
from hessian_spectra.curvature.operator import (
    CurvatureOperator,
    NondeterminismError,
    Operator,
    ShiftedOperator,
    eval_mode,
    make_batches,
)
from hessian_spectra.curvature.power import PowerResult, power_iteration
from hessian_spectra.curvature.probes import random_probes
from hessian_spectra.curvature.registry import CURVATURES, curvature_kind
from hessian_spectra.curvature.slq import SpectralDensity, slq, smooth_density
from hessian_spectra.curvature.trace import Estimate, frobenius, hutchinson, hutchpp

__all__ = [
    "CURVATURES",
    "Curvature",
    "CurvatureOperator",
    "EmpiricalFisher",
    "Estimate",
    "GGN",
    "Hessian",
    "LanczosResult",
    "LanczosRun",
    "NondeterminismError",
    "Operator",
    "PowerResult",
    "ShiftedOperator",
    "SpectralDensity",
    "converged_within",
    "curvature_kind",
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
    "slq",
    "smooth_density",
]
