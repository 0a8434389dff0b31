"""``hessian-spectra landscape``: loss surfaces of one checkpoint along its top-2 Hessian eigenvectors and/or
filter-normalised random directions.

Writes one long table (``--out``): a row per direction kind and grid point with ``c1, c2``, the mean loss and
accuracy over the data at theta + c1 v1 + c2 v2, and for eigenvector directions their eigenvalues, residuals
||H v - lambda v||, relative residuals, the spectrum's tolerance and converged flags (empty for random directions).
"""

from __future__ import annotations

import argparse
import csv
import logging

from hessian_spectra.atomic import atomic_write
from hessian_spectra.runtime import add_runtime_arguments, setup_runtime
from hessian_spectra.tables import cell

log = logging.getLogger(__name__)

EIGENPAIR_COLUMNS = (
    "lambda1",
    "lambda2",
    "residual1",
    "residual2",
    "relative_residual1",
    "relative_residual2",
    "tolerance",
    "converged1",
    "converged2",
)
COLUMNS = ("epoch", "direction", "space", "i", "j", "c1", "c2", "loss", "accuracy", *EIGENPAIR_COLUMNS)
DIRECTIONS = ("eigen", "random")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra landscape``: the checkpoint, its data, the directions and the grid."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (hessian_spectra.checkpoint format)")
    parser.add_argument("--data", required=True, help="subset file (hessian_spectra.data.save_subset format)")
    parser.add_argument("--out", required=True, help="output table (TSV, long format)")
    parser.add_argument("--directions", nargs="+", choices=DIRECTIONS, default=list(DIRECTIONS))
    parser.add_argument(
        "--eigenvectors", default=None, help="npz of `hessian-spectra spectrum --eigenvectors` (needed for eigen)"
    )
    parser.add_argument(
        "--random-params", default="all", help="parameters random directions move: all | last_layer | NAME[,NAME...]"
    )
    parser.add_argument("--grid-points", type=int, default=13, help="grid points per axis (13)")
    parser.add_argument("--extent", type=float, default=0.3, help="c1, c2 in [-extent, extent] (0.3)")
    parser.add_argument("--batch-size", type=int, default=512, help="samples per forward pass (512)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random directions (0)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    add_runtime_arguments(parser)


def _eigen_directions(model, path: str):
    """(v1, v2, space, ``EIGENPAIR_COLUMNS``) from a spectrum npz holding eigenvectors."""
    from hessian_spectra.landscape import unflatten_direction
    from hessian_spectra.tables import read_arrays, require_arrays

    npz = read_arrays(path)
    if "eigenvectors" not in npz:
        raise ValueError(f"{path}: no eigenvectors (run `hessian-spectra spectrum` with --eigenvectors)")
    require_arrays(path, npz, ("eigenvalues", "residuals", "relative_residuals", "converged", "tolerance", "param_names"))
    vectors, values, residuals = npz["eigenvectors"], npz["eigenvalues"], npz["residuals"]
    relative, converged, tolerance = npz["relative_residuals"], npz["converged"], float(npz["tolerance"])
    names = [str(n) for n in npz["param_names"]]
    if vectors.ndim != 2 or vectors.shape[1] < 2:
        raise ValueError(f"{path}: needs at least two eigenvectors, has shape {vectors.shape}")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    space = "full" if names == trainable else ",".join(names)
    v1, v2 = (unflatten_direction(model, names, vectors[:, k]) for k in (0, 1))
    pairs = {"tolerance": tolerance}
    for k in (0, 1):
        pairs.update(
            {
                f"lambda{k + 1}": float(values[k]),
                f"residual{k + 1}": float(residuals[k]),
                f"relative_residual{k + 1}": float(relative[k]),
                f"converged{k + 1}": bool(converged[k]),
            }
        )
    return v1, v2, space, pairs


def _write_table(path: str, rows: list[dict]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS, delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def run(args: argparse.Namespace) -> None:
    """Evaluate the loss and accuracy on the grid along each direction kind and write the long table to ``--out``."""
    device, _slot = setup_runtime(args)
    import torch

    from hessian_spectra.checkpoint import load_checkpoint, model_from_checkpoint
    from hessian_spectra.curvature import make_batches
    from hessian_spectra.data import load_subset
    from hessian_spectra.inputs import check_subset_fits
    from hessian_spectra.landscape import filter_normalized_direction, grid_coordinates, loss_surface
    from hessian_spectra.spectrum import resolve_params

    if "eigen" in args.directions and not args.eigenvectors:
        raise ValueError("--directions eigen needs --eigenvectors")
    ckpt = load_checkpoint(args.checkpoint)
    x, y, meta = load_subset(args.data)
    check_subset_fits(args.data, meta, x.shape, int(y.max()), args.checkpoint, ckpt)
    model = model_from_checkpoint(ckpt, map_location=device)
    batches = make_batches(x.to(device), y.to(device), args.batch_size)
    coords = grid_coordinates(args.grid_points, args.extent)
    dtype = getattr(torch, args.dtype)

    rows = []
    for kind in args.directions:
        if kind == "eigen":
            v1, v2, space, eigenpairs = _eigen_directions(model, args.eigenvectors)
        else:
            space, names = resolve_params(model, args.random_params)
            generator = torch.Generator().manual_seed(args.seed)
            v1, v2 = (filter_normalized_direction(model, names, generator) for _ in range(2))
            eigenpairs = dict.fromkeys(EIGENPAIR_COLUMNS)
        surface = loss_surface(model, batches, v1, v2, coords, dtype=dtype)
        log.info(
            "%s directions over %s: %d evaluations on %d samples, loss in [%.6g, %.6g]",
            kind,
            space,
            surface.evaluations,
            len(x),
            surface.loss.min(),
            surface.loss.max(),
        )
        for i, c1 in enumerate(coords):
            for j, c2 in enumerate(coords):
                rows.append(
                    {
                        "epoch": ckpt.get("epoch"),
                        "direction": kind,
                        "space": space,
                        "i": i,
                        "j": j,
                        "c1": repr(float(c1)),
                        "c2": repr(float(c2)),
                        "loss": repr(float(surface.loss[i, j])),
                        "accuracy": repr(float(surface.accuracy[i, j])),
                        **{key: cell(value) for key, value in eigenpairs.items()},
                    }
                )
    _write_table(args.out, rows)
