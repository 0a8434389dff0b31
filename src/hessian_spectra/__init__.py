"""Hessian spectra of neural networks: curvature engine, training and study tooling.

Importing this package is cheap (no torch): the Snakefile imports it at parse time.
"""

__version__ = "0.1.0"
