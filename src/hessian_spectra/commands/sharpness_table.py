"""``hessian-spectra sharpness-table``: lambda_max and ||H||_F ~ sqrt(sum of top-K lambda_i^2) per run (CSV).

Torch-free: reads each run's run.json, history.tsv and trajectory.tsv (study sharpest_directions).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dirs", nargs="+", required=True, help="run directories of the study")
    parser.add_argument("--out", required=True, help="output CSV, one row per run")


def run(args: argparse.Namespace) -> None:
    from hessian_spectra.plots import sharpest_directions as plots

    plots.write_table(plots.sharpness_table(plots.load_study(args.run_dirs)), args.out)
