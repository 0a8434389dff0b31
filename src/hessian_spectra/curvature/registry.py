"""Every curvature kind by name, as ``CurvatureOperator(curvature=...)``, ``dense_hessian`` and the commands'
``--curvature`` know them; the names and modes are those of the torch-free ``hessian_spectra.curvature_names``."""

from __future__ import annotations

from hessian_spectra.curvature.empirical_fisher import EmpiricalFisher
from hessian_spectra.curvature.kinds import GGN, Curvature, Hessian

CURVATURES: dict[str, type[Curvature]] = {kind.name: kind for kind in (Hessian, GGN, EmpiricalFisher)}


def curvature_kind(name: str) -> type[Curvature]:
    """The curvature registered as ``name``."""
    if name not in CURVATURES:
        raise ValueError(f"curvature must be one of {tuple(CURVATURES)}, got {name!r}")
    return CURVATURES[name]
