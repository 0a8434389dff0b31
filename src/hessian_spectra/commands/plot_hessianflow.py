"""``hessian-spectra plot-hessianflow``: the figures of study `hessianflow` from its runs' tables (no torch).

Reads, in every run directory given, ``run.json``, ``history.tsv``, ``dominant_eigen.tsv`` (command
``dominant-eigen``) and ``final_trace_density.tsv`` / ``.npz`` (command ``spectrum`` at the final checkpoint).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

EIGEN_TABLE = "dominant_eigen.tsv"
FINAL_TABLE = "final_trace_density.tsv"
FINAL_NPZ = "final_trace_density.npz"
FULL = "full"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, help="run directories of the study")
    parser.add_argument("--dominant-eigenvalue", required=True, help="output PNG: lambda_1 vs epoch")
    parser.add_argument("--absa-schedule", required=True, help="output PNG: batch size, lr, test accuracy vs epoch")
    parser.add_argument("--esd-final", required=True, help="output PNG: spectral density at the final checkpoint")


def run_labels(runs: list[dict]) -> list[str]:
    """The optimizer's name in capitals (SGD, ABSA), or with the run's variant where a model has several."""
    names = [run["optimizer"]["name"].upper() for run in runs]
    counts = Counter((run["model"], name) for run, name in zip(runs, names))
    return [
        name if counts[(run["model"], name)] == 1 else f"{name} ({run['variant']})" for run, name in zip(runs, names)
    ]


def collect(run_dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Tidy tables of all runs: (eigen, history, density, trace), each with ``model`` and ``label`` columns."""
    import numpy as np
    import pandas as pd

    runs = [json.loads((d / "run.json").read_text()) for d in run_dirs]
    eigen, history, density, trace = [], [], [], []
    for run_dir, run, label in zip(run_dirs, runs, run_labels(runs)):
        tag = {"model": run["model"], "label": label, "run": run["key"]}
        table = pd.read_csv(run_dir / EIGEN_TABLE, sep="\t")
        eigen.append(table[table["block"] == FULL].assign(**tag))
        history.append(pd.read_csv(run_dir / "history.tsv", sep="\t").assign(**tag))
        final = pd.read_csv(run_dir / FINAL_TABLE, sep="\t")
        trace.append(final[(final["block"] == FULL) & (final["quantity"] == "trace")].assign(**tag))
        with np.load(run_dir / FINAL_NPZ) as arrays:
            i = list(arrays["blocks"]).index(FULL)
            density.append(pd.DataFrame({"eigenvalue": arrays[f"grid_{i}"], "density": arrays[f"density_{i}"], **tag}))
    return tuple(pd.concat(parts, ignore_index=True) for parts in (eigen, history, density, trace))


def run(args: argparse.Namespace) -> None:
    from hessian_spectra.plots.hessianflow import plot_absa_schedule, plot_dominant_eigenvalue, plot_esd_final

    eigen, history, density, trace = collect([Path(d) for d in args.runs])
    plot_dominant_eigenvalue(eigen, args.dominant_eigenvalue)
    plot_absa_schedule(history, args.absa_schedule)
    plot_esd_final(density, trace, args.esd_final)
