"""``hessian-spectra dominant-eigen``: the dominant Hessian eigenvalue at every checkpoint of one run.

Each epoch's checkpoint gets two estimates on the run's Hessian subset: power iteration with HessianFlow's
settings (what the source reports) and Lanczos top-1 with its Ritz residual and convergence flag. One table
(the ``spectrum`` command's columns, quantities ``power_eigenvalue`` and ``eigenvalue``), written atomically
once every checkpoint is done; a killed job resumes at its first unfinished epoch.
"""

from __future__ import annotations

import argparse
import logging

from hessian_spectra.commands import request_from_args
from hessian_spectra.runtime import add_walk_arguments, setup_runtime

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra dominant-eigen``: the walk over checkpoints and the power iteration's settings."""
    add_walk_arguments(parser, max_steps=100, batch_size=200)
    parser.add_argument("--power-iters", type=int, default=10, help="power iterations (source: 10)")
    parser.add_argument("--power-tol", type=float, default=1e-2, help="power iteration relative tolerance (1e-2)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the start vectors (0)")


def run(args: argparse.Namespace) -> None:
    """Estimate the dominant eigenvalue at every checkpoint of the run and write the table to ``--out``."""
    device, _slot = setup_runtime(args)
    from hessian_spectra.inputs import check_walk_subset
    from hessian_spectra.spectrum import SpectrumRequest, checkpoint_spectra
    from hessian_spectra.tables import load_run

    config = load_run(args.run_json)
    check_walk_subset(args.checkpoints, args.subset)
    request = request_from_args(SpectrumRequest, args, top_k=1)
    checkpoint_spectra(args.checkpoints, args.subset, request, args.batch_size, device, args.out)
    log.info("%s: dominant eigenvalue of %d checkpoints -> %s", config["key"], len(args.checkpoints), args.out)
