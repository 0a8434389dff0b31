"""``hessian-spectra plot-sharpest-directions``: the four figures of study sharpest_directions from its runs' tables.

Writes ``spectrum_trajectory.png``, ``lr_grid.png``, ``bs_grid.png`` and ``nsgd_gamma.png`` into ``--out-dir``
(torch-free: reads each run's run.json, history.tsv and trajectory.tsv).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dirs", nargs="+", required=True, help="run directories of the study")
    parser.add_argument("--out-dir", required=True, help="directory of the figures")


def run(args: argparse.Namespace) -> None:
    from hessian_spectra.plots import sharpest_directions as plots

    tables = plots.load_study(args.run_dirs)
    out = Path(args.out_dir)
    plots.plot_spectrum_trajectory(tables, out / "spectrum_trajectory.png")
    plots.plot_grid(tables, "lr", out / "lr_grid.png")
    plots.plot_grid(tables, "batch_size", out / "bs_grid.png")
    plots.plot_nsgd_gamma(tables, out / "nsgd_gamma.png")
