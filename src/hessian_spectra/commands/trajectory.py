"""``hessian-spectra trajectory``: top-K Hessian eigenvalues (Lanczos, with residuals) at every checkpoint of a run.

Checkpoint ``epoch_NNNN.pt`` holds the weights at the start of epoch N+1 (epoch 0 = the initial point). Each is
measured on the run's fixed Hessian subset, in eval mode, with the run's L2 added (``l2 * I``). One long-format
table (the ``spectrum`` command's columns) for all epochs is written atomically at the end.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hessian_spectra.runtime import add_runtime_arguments, setup_runtime

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", required=True, help="run directory (run.json, checkpoints/, hessian_subset.pt)")
    parser.add_argument("--out", required=True, help="output table (TSV, long format, one row per epoch x index)")
    parser.add_argument("--top-k", type=int, default=5, help="eigenvalues per checkpoint (5)")
    parser.add_argument("--tol", type=float, default=1e-4, help="relative Ritz residual tolerance (1e-4)")
    parser.add_argument("--max-steps", type=int, default=200, help="Lanczos steps at most (200)")
    parser.add_argument("--batch-size", type=int, default=128, help="samples per product batch (128)")
    add_runtime_arguments(parser)


def run(args: argparse.Namespace) -> None:
    device, _slot = setup_runtime(args)
    from hessian_spectra.checkpoint import load_checkpoint, model_from_checkpoint, trained_run
    from hessian_spectra.curvature import make_batches
    from hessian_spectra.data import load_subset
    from hessian_spectra.spectrum import SpectrumRequest, SpectrumResult, compute_spectrum, write_spectrum

    run_dir = Path(args.run_dir)
    config, paths = trained_run(run_dir)
    x, y, _meta = load_subset(run_dir / "hessian_subset.pt")
    batches = make_batches(x.to(device), y.to(device), args.batch_size)
    request = SpectrumRequest(
        top_k=args.top_k, tol=args.tol, max_steps=args.max_steps, l2=config["l2"], seed=config["seed"]
    )
    table = SpectrumResult()
    model = None
    for path in paths:
        ckpt = load_checkpoint(path)
        if model is None:
            model = model_from_checkpoint(ckpt, map_location=device)
        else:
            model.load_state_dict(ckpt["state_dict"])
        log.info("run %s: epoch %d of %d", config["key"], ckpt["epoch"], config["epochs"])
        table.rows += compute_spectrum(model, batches, request, epoch=ckpt["epoch"]).rows
    write_spectrum(table, args.out)
