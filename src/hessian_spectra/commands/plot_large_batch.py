"""``hessian-spectra plot-large-batch``: the figures of study `large_batch` from its runs' tables (no torch).

``spectral`` reads, in every run directory given, ``run.json`` and ``large_batch_spectrum_{hessian}.tsv``
(command ``spectrum``) and writes ``hessian_spectral.png`` plus the tidy table of the eigenvalues it plots;
``surface`` reads ``run.json`` and ``large_batch_landscape.tsv`` (command ``landscape``) and writes one
loss-surface figure.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

HESSIANS = ("last_layer", "full")
LANDSCAPE_TABLE = "large_batch_landscape.tsv"
TABLE_COLUMNS = ["run", "batch_size", "hessian", "block", "index", "value", "residual", "converged", "products"]


def spectrum_table(hessian: str) -> str:
    """File name of a run's top-k table of one Hessian (``last_layer`` or ``full``)."""
    return f"large_batch_spectrum_{hessian}.tsv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    figures = parser.add_subparsers(dest="figure", required=True)
    spectral = figures.add_parser("spectral", help="top-k eigenvalues vs index, one line per batch size")
    spectral.add_argument("--runs", nargs="+", required=True, help="run directories of the study")
    spectral.add_argument("--hessians", nargs="+", choices=HESSIANS, required=True, help="panels, in order")
    spectral.add_argument("--top-k", type=int, required=True, help="eigenvalues per line")
    spectral.add_argument("--out", required=True, help="output PNG")
    spectral.add_argument("--table", required=True, help="output TSV: the plotted eigenvalues with convergence")
    surface = figures.add_parser("surface", help="loss surfaces of the given runs, both direction kinds")
    surface.add_argument("--runs", nargs="+", required=True, help="run directories (rows of the figure)")
    surface.add_argument("--kind", choices=["surface", "contour"], default="surface")
    surface.add_argument("--out", required=True, help="output PNG")


def run_labels(runs: list[dict]) -> list[str]:
    """``batch size B``, with the run's seed and variant where several runs share a batch size."""
    counts = Counter(run["batch_size"] for run in runs)
    return [
        f"batch size {run['batch_size']}"
        + (f" (seed {run['seed']}, {run['variant']})" if counts[run["batch_size"]] > 1 else "")
        for run in runs
    ]


def collect_spectra(run_dirs: list[Path], hessians: list[str], top_k: int):
    """The top-``top_k`` eigenvalues of every run and Hessian as one tidy table (``TABLE_COLUMNS``)."""
    import pandas as pd

    parts = []
    for run_dir in run_dirs:
        run = json.loads((run_dir / "run.json").read_text())
        for hessian in hessians:
            table = pd.read_csv(run_dir / spectrum_table(hessian), sep="\t")
            table = table[(table["quantity"] == "eigenvalue") & (table["index"] <= top_k)]
            parts.append(table.assign(run=run["key"], batch_size=run["batch_size"], hessian=hessian))
    return pd.concat(parts, ignore_index=True)[TABLE_COLUMNS]


def collect_landscapes(run_dirs: list[Path]):
    """Every run's landscape table with a ``label`` column."""
    import pandas as pd

    runs = [json.loads((d / "run.json").read_text()) for d in run_dirs]
    parts = [
        pd.read_csv(run_dir / LANDSCAPE_TABLE, sep="\t").assign(label=label)
        for run_dir, label in zip(run_dirs, run_labels(runs))
    ]
    return pd.concat(parts, ignore_index=True)


def run(args: argparse.Namespace) -> None:
    from hessian_spectra.atomic import atomic_write
    from hessian_spectra.plots.large_batch import plot_spectral, plot_surfaces

    run_dirs = [Path(d) for d in args.runs]
    if args.figure == "spectral":
        table = collect_spectra(run_dirs, args.hessians, args.top_k)
        plot_spectral(table, args.hessians, args.out)
        atomic_write(args.table, lambda tmp: table.to_csv(tmp, sep="\t", index=False))
    else:
        plot_surfaces(collect_landscapes(run_dirs), args.kind, args.out)
