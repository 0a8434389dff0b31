"""``hessian-spectra trajectory``: top-K Hessian eigenvalues (Lanczos, with residuals) at every checkpoint of a run.

Checkpoint ``epoch_NNNN.pt`` holds the weights at the start of epoch N+1 (epoch 0 = the initial point). Each is
measured on the run's fixed Hessian subset, in eval mode, with the run's L2 added (``l2 * I``). One long-format
table (the ``spectrum`` command's columns) for all epochs is written atomically at the end; a killed job resumes
at its first unfinished epoch.
"""

from __future__ import annotations

import argparse
import logging

from hessian_spectra.commands import request_from_args
from hessian_spectra.runtime import add_walk_arguments, setup_runtime

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra trajectory``: the walk over checkpoints and the Lanczos settings."""
    add_walk_arguments(parser, max_steps=200, batch_size=128)
    parser.add_argument("--top-k", type=int, default=5, help="eigenvalues per checkpoint (5)")


def run(args: argparse.Namespace) -> None:
    """Compute the top-K eigenvalues at every checkpoint of the run and write the table to ``--out``."""
    device, _slot = setup_runtime(args)
    from hessian_spectra.inputs import check_walk_subset
    from hessian_spectra.spectrum import SpectrumRequest, checkpoint_spectra
    from hessian_spectra.tables import load_run

    config = load_run(args.run_json)
    check_walk_subset(args.checkpoints, args.subset)
    request = request_from_args(SpectrumRequest, args, l2=config["l2"], seed=config["seed"])
    checkpoint_spectra(args.checkpoints, args.subset, request, args.batch_size, device, args.out)
    log.info("%s: top-%d eigenvalues of %d checkpoints -> %s", config["key"], args.top_k, len(args.checkpoints), args.out)
