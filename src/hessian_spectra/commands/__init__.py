"""Subcommands of the ``hessian-spectra`` CLI: each module has ``add_arguments(parser)`` and ``run(args)``.

Modules import torch inside ``run`` only, so ``hessian-spectra --help`` stays fast.
"""
