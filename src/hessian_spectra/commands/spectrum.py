"""``hessian-spectra spectrum``: curvature spectra of one checkpoint on a fixed data subset.

Writes a long-format table (``--out``) and optionally an npz of raw arrays (``--npz``), both atomically and
only after every quantity has been computed, so a failing run leaves no output.
"""

from __future__ import annotations

import argparse
import logging

from hessian_spectra.commands import request_from_args
from hessian_spectra.curvature_names import CURVATURES
from hessian_spectra.runtime import add_runtime_arguments, setup_runtime

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra spectrum``: the checkpoint, its subset, the curvature and the quantities."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (hessian_spectra.checkpoint format)")
    parser.add_argument("--data", required=True, help="Hessian subset file (hessian-spectra subset)")
    parser.add_argument("--out", required=True, help="output table (TSV, long format)")
    parser.add_argument("--npz", default=None, help="output npz (densities, eigenvalues, eigenvectors)")
    eig = parser.add_argument_group("eigenvalues")
    eig.add_argument("--top-k", type=int, default=0, help="Lanczos eigenvalues to compute (0 = none)")
    eig.add_argument("--which", choices=["LA", "SA"], default="LA", help="largest or smallest algebraic (LA)")
    eig.add_argument("--tol", type=float, default=1e-6, help="relative Ritz residual tolerance (1e-6)")
    eig.add_argument("--max-steps", type=int, default=200, help="Lanczos steps at most (200)")
    eig.add_argument("--eigenvectors", action="store_true", help="store the eigenvectors in the npz")
    eig.add_argument("--smallest-k", type=int, default=0, help="smallest algebraic eigenvalues too (0 = none)")
    eig.add_argument("--power-iters", type=int, default=0, help="power iterations (0 = none)")
    eig.add_argument("--power-tol", type=float, default=1e-2, help="power iteration relative tolerance (1e-2)")
    eig.add_argument("--dense", action="store_true", help="exact eigh of the parameter block instead of Lanczos")
    est = parser.add_argument_group("trace, norm and density")
    est.add_argument("--trace-probes", type=int, default=0, help="trace probes / products (0 = none)")
    est.add_argument("--trace-method", choices=["hutchinson", "hutchpp"], default="hutchinson")
    est.add_argument("--frobenius-probes", type=int, default=0, help="Frobenius-norm probes (0 = none)")
    est.add_argument("--density-steps", type=int, default=0, help="SLQ Lanczos steps (0 = no density)")
    est.add_argument("--density-probes", type=int, default=1, help="SLQ probe vectors (1)")
    est.add_argument("--grid-points", type=int, default=1024, help="density grid points (1024)")
    est.add_argument("--sigma-rel", type=float, default=0.01, help="smoothing width / spectrum range (0.01)")
    what = parser.add_argument_group("what and how")
    what.add_argument("--layers", action="store_true", help="densities (and top-k) of every layer block too")
    what.add_argument("--blocks", default=None, help="with --layers: NAME[,NAME...] (every Conv2d/Linear weight)")
    what.add_argument("--params", default="all", help="all | last_layer | NAME[,NAME...] (all)")
    what.add_argument(
        "--curvature", choices=CURVATURES, default="hessian", help="%(choices)s (default: %(default)s)"
    )
    what.add_argument("--l2", type=float, default=0.0, help="add l2 * I (the L2 penalty's Hessian)")
    what.add_argument("--batch-size", type=int, default=128, help="samples per product batch (128)")
    what.add_argument("--max-lanes", type=int, default=None, help="probe lanes vmapped at once (8 on CPU, 32 on GPU)")
    what.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    what.add_argument("--seed", type=int, default=0, help="seeds every random probe (0)")
    add_runtime_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Compute the requested spectra of the checkpoint and write the table (and ``--npz``) atomically."""
    device, _slot = setup_runtime(args)
    from hessian_spectra.checkpoint import load_checkpoint, model_from_checkpoint
    from hessian_spectra.curvature import make_batches
    from hessian_spectra.data.subset import load_subset
    from hessian_spectra.events import (
        epoch_events,
        remove_events,
        table_scalars,
        write_epoch_scalars,
        write_scalars,
    )
    from hessian_spectra.inputs import check_subset_fits
    from hessian_spectra.layout import table_events
    from hessian_spectra.spectrum import SpectrumRequest, compute_spectrum, write_spectrum

    ckpt = load_checkpoint(args.checkpoint)
    x, y, meta = load_subset(args.data)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{args.data}: x and y must be non-empty and of equal length ({len(x)} vs {len(y)})")
    check_subset_fits(args.data, meta, x.shape, int(y.max()), args.checkpoint, ckpt)
    model = model_from_checkpoint(ckpt, map_location=device)
    request = request_from_args(SpectrumRequest, args, blocks=tuple(args.blocks.split(",")) if args.blocks else None)
    log.info("spectrum of %s (epoch %s) on %d samples, %s", args.checkpoint, ckpt.get("epoch"), len(x), device)
    batches = make_batches(x.to(device), y.to(device), args.batch_size)
    result = compute_spectrum(model, batches, request, epoch=ckpt.get("epoch"))
    write_spectrum(result, args.out, args.npz)
    scalars, series = table_scalars(args.out), epoch_events(args.out, ckpt["epoch"])
    if series is None:
        write_scalars(table_events(args.out), scalars)
    else:
        write_epoch_scalars(series, scalars)
        remove_events(table_events(args.out))  # the folder of this epoch alone that earlier versions wrote
