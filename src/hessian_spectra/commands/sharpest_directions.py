"""``hessian-spectra sharpest-directions``: the table and figures of study sharpest_directions (torch-free).

Both read every run's ``run.json``, history and ``trajectory`` table. ``table`` writes the sharpness table:
lambda_max and ||H||_F ~ sqrt(sum of top-K lambda_i^2) per run (CSV); ``figures`` writes
``spectrum_trajectory.png``, ``lr_grid.png``, ``bs_grid.png`` and ``nsgd_gamma.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

FIGURES = ("spectrum_trajectory", "lr_grid", "bs_grid", "nsgd_gamma")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra sharpest-directions`` and its actions ``table`` and ``figures``."""
    commands = parser.add_subparsers(dest="what", required=True)
    for name, text in (("table", "the sharpness table (CSV)"), ("figures", "the four figures")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--runs", nargs="+", required=True, help="run.json of every run of the study")
        command.add_argument("--histories", nargs="+", required=True, help="their history.tsv, in the same order")
        command.add_argument("--trajectories", nargs="+", required=True, help="their trajectory tables, same order")
        if name == "table":
            command.add_argument("--out", required=True, help="output CSV, one row per run")
        else:
            command.add_argument("--out-dir", required=True, help="directory of the figures")


def run(args: argparse.Namespace) -> None:
    """``table``: write the sharpness table; ``figures``: draw the study's four figures."""
    from hessian_spectra.plots import sharpest_directions as plots
    from hessian_spectra.tables import write_table

    tables = plots.load_study(args.runs, args.histories, args.trajectories)
    if args.what == "table":
        write_table(plots.sharpness_table(tables), args.out)
        return
    from hessian_spectra.plots.common import save_figure

    figures = {
        "spectrum_trajectory": plots.spectrum_trajectory_figure(tables),
        "lr_grid": plots.grid_figure(tables, "lr"),
        "bs_grid": plots.grid_figure(tables, "batch_size"),
        "nsgd_gamma": plots.nsgd_gamma_figure(tables),
    }
    for name in FIGURES:
        save_figure(figures[name], Path(args.out_dir) / f"{name}.png")
