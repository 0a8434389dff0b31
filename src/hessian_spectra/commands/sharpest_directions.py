"""``hessian-spectra sharpest-directions``: the per-run trajectories, the table and the figures of study
sharpest_directions.

``trajectory`` measures the top-K Hessian eigenvalues (Lanczos, with residuals) at every checkpoint of one run:
checkpoint ``epoch_NNNN.pt`` holds the weights at the start of epoch N+1 (epoch 0 = the initial point), each
measured on the run's fixed Hessian subset, in eval mode, with the run's L2 added (``l2 * I``); one long-format
table (the ``spectrum`` command's columns) for all epochs is written atomically at the end, and a killed job
resumes at its first unfinished epoch. ``table`` and ``figures`` (torch-free) read every run's ``run.json``,
history and ``trajectory`` table: ``table`` writes the sharpness table, lambda_max and ||H||_F ~ sqrt(sum of top-K
lambda_i^2) per run (CSV); ``figures`` writes ``spectrum_trajectory.png``, ``lr_grid.png``, ``bs_grid.png`` and
``nsgd_gamma.png``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hessian_spectra.commands import request_from_args
from hessian_spectra.runtime import add_walk_arguments, start_walk

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra sharpest-directions`` and its actions ``trajectory``, ``table`` and
    ``figures``."""
    commands = parser.add_subparsers(dest="what", required=True)
    trajectory = commands.add_parser("trajectory", help="top-K Hessian eigenvalues at every checkpoint of a run")
    add_walk_arguments(trajectory, max_steps=200, batch_size=128)
    trajectory.add_argument("--top-k", type=int, default=5, help="eigenvalues per checkpoint (5)")
    for name, text in (("table", "the sharpness table (CSV)"), ("figures", "the four figures")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--runs", nargs="+", required=True, help="run.json of every run of the study")
        command.add_argument("--histories", nargs="+", required=True, help="their history.tsv, in the same order")
        command.add_argument("--trajectories", nargs="+", required=True, help="their trajectory tables, same order")
        if name == "table":
            command.add_argument("--out", required=True, help="output CSV, one row per run")
        else:
            command.add_argument("--out-dir", required=True, help="directory of the figures")


def _trajectory(args: argparse.Namespace) -> None:
    """Compute the top-K eigenvalues at every checkpoint of the run and write the table to ``--out``."""
    device, _slot, config = start_walk(args)
    from hessian_spectra.spectrum import SpectrumRequest, checkpoint_spectra

    request = request_from_args(SpectrumRequest, args, l2=config["l2"], seed=config["seed"])
    checkpoint_spectra(args.checkpoints, args.subset, request, args.batch_size, device, args.out)
    log.info("%s: top-%d eigenvalues of %d checkpoints -> %s", config["key"], args.top_k, len(args.checkpoints), args.out)


def _figures(args: argparse.Namespace) -> None:
    from hessian_spectra.plots import sharpest_directions as plots
    from hessian_spectra.plots.common import save_figure
    from hessian_spectra.studies.sharpest_directions.table import load_study

    tables = load_study(args.runs, args.histories, args.trajectories)
    figures = {
        "spectrum_trajectory": plots.spectrum_trajectory_figure(tables),
        "lr_grid": plots.grid_figure(tables, "lr"),
        "bs_grid": plots.grid_figure(tables, "batch_size"),
        "nsgd_gamma": plots.nsgd_gamma_figure(tables),
    }
    for name, figure in figures.items():
        save_figure(figure, Path(args.out_dir) / f"{name}.png")


def run(args: argparse.Namespace) -> None:
    """``trajectory``: one run's eigenvalues along training; ``table``: write the sharpness table; ``figures``:
    draw the study's four figures."""
    if args.what == "trajectory":
        _trajectory(args)
    elif args.what == "table":
        from hessian_spectra.studies.sharpest_directions.table import build_table
        from hessian_spectra.tables import write_table

        write_table(build_table(args.runs, args.histories, args.trajectories), args.out)
    else:
        _figures(args)
