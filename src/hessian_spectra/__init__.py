"""Hessian spectra of neural networks: curvature engine, training and study tooling.

Importing this package is cheap (no torch): the Snakefile imports it at parse time. ``hessian_spectra.Hessian``
(the library's one-object front, ``hessian_spectra.hessian``) imports torch when first used.
"""

__version__ = "0.1.0"
__all__ = ["Hessian"]


def __getattr__(name: str):
    if name == "Hessian":
        from hessian_spectra.hessian import Hessian

        return Hessian
    raise AttributeError(f"module 'hessian_spectra' has no attribute {name!r}")
