"""``hessian-spectra subset``: choose and save a fixed, seeded Hessian subset (as the workflow's `subset` rule does).

The spec (``hessian_spectra.runs.subset_spec``) names the dataset, its preprocessing as the runs load it, the
split and the selection; the file holds ``x``, ``y``, the chosen ``indices`` and the spec as ``meta``.
"""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra subset``: the subset's spec as JSON, the data root and the output."""
    parser.add_argument("--spec", required=True, help="the subset's spec as JSON")
    parser.add_argument("--out", required=True, help="output file (.pt)")
    parser.add_argument("--data-root", default=None, help="torchvision dataset root (not needed for digits or mnist5k)")


def run(args: argparse.Namespace) -> None:
    """Select the subset the spec names and save it to ``--out``."""
    from hessian_spectra.data.subset import build_subset, save_subset

    spec = json.loads(args.spec)
    x, y, indices = build_subset(spec, args.data_root)
    save_subset(args.out, x, y, indices, spec)
    log.info("subset of %d %s samples of %s -> %s", len(y), spec["split"], spec["dataset"], args.out)
