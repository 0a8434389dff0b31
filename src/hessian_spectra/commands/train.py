"""``hessian-spectra train``: train one planned run (as the workflow's `train` rule does)."""

from __future__ import annotations

import argparse
import json

from hessian_spectra.runtime import add_runtime_arguments, setup_runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra train``: the run (JSON or file), its directory, data and runtime."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="the run's config as JSON (as planned by hessian_spectra.runs)")
    source.add_argument("--run-file", help="a run.json file")
    parser.add_argument("--out-dir", required=True, help="run directory (checkpoints/, history.tsv, run.json)")
    parser.add_argument("--data-root", default=None, help="torchvision dataset root (not needed for digits or mnist5k)")
    parser.add_argument("--subset", default=None, help="the Hessian subset, for optimizers that train on it (nsgd)")
    add_runtime_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Train the run into ``--out-dir``, resuming from the longest intact prefix of its checkpoints."""
    config = json.loads(args.run) if args.run else json.loads(open(args.run_file).read())
    device, _slot = setup_runtime(args, exact=False)
    from hessian_spectra.train.loop import train_run

    train_run(
        config, args.out_dir, data_root=args.data_root, device=str(device), subset_path=args.subset,
        products=args.products,
    )
