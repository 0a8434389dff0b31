"""``hessian-spectra large-batch``: the table and figures of study `large_batch` (torch-free).

``table`` collects the top-k eigenvalues of every run's ``spectrum`` tables into the study's tidy table (one row
per run, seed and eigenvalue, with the optimizer steps the run took);
``spectral`` draws it (``hessian_spectral.png``); ``surface`` draws the ``landscape`` tables of some runs (one
loss-surface figure per batch size, each panel on its own loss range).
"""

from __future__ import annotations

import argparse

from hessian_spectra.studies.large_batch.table import HESSIANS, build_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra large-batch`` and its actions ``table``, ``spectral`` and ``surface``."""
    commands = parser.add_subparsers(dest="what", required=True)
    table = commands.add_parser("table", help="the top-k eigenvalues of every run and Hessian, one tidy table")
    table.add_argument("--runs", nargs="+", required=True, help="run.json of every run")
    table.add_argument("--histories", nargs="+", required=True, help="their history.tsv, in the same order")
    table.add_argument("--spectra", nargs="+", required=True, help="spectrum tables (spectrum_{hessian}.tsv)")
    table.add_argument("--top-k", type=int, required=True, help="eigenvalues per run and Hessian")
    table.add_argument("--out", required=True, help="output TSV")
    spectral = commands.add_parser("spectral", help="top-k eigenvalues vs index, mean over seeds per batch size")
    spectral.add_argument("--table", required=True, help="the study's table (`large-batch table`)")
    spectral.add_argument("--hessians", nargs="+", choices=HESSIANS, required=True, help="panels, in order")
    spectral.add_argument("--out", required=True, help="output PNG")
    surface = commands.add_parser("surface", help="loss surfaces of the given runs, both direction kinds")
    surface.add_argument("--runs", nargs="+", required=True, help="run.json of every run (rows of the figure)")
    surface.add_argument("--landscapes", nargs="+", required=True, help="their landscape tables, in the same order")
    surface.add_argument("--kind", choices=["surface", "contour"], default="surface")
    surface.add_argument("--out", required=True, help="output PNG")


def _runs(paths: list[str]) -> list[dict]:
    from hessian_spectra.tables import load_run

    return [load_run(path) for path in paths]


def collect_landscapes(runs: list[dict], landscapes: list[str]):
    """Every run's landscape table with a ``label`` column: its batch size, and its seed where the runs have
    several."""
    import pandas as pd

    from hessian_spectra.plots.labels import run_labels
    from hessian_spectra.tables import read_table

    if len(runs) != len(landscapes):
        raise ValueError(f"{len(runs)} runs but {len(landscapes)} landscape tables")
    several_seeds = len({run["seed"] for run in runs}) > 1
    labels = run_labels(
        runs, lambda run: f"batch size {run['batch_size']}" + (f", seed {run['seed']}" if several_seeds else "")
    )
    return pd.concat([read_table(p).assign(label=l) for p, l in zip(landscapes, labels)], ignore_index=True)


def run(args: argparse.Namespace) -> None:
    """``table``: collect the runs' top-k eigenvalues into the study's table; ``spectral``: draw it;
    ``surface``: draw the runs' loss surfaces."""
    from hessian_spectra.tables import read_table, write_table

    if args.what == "table":
        write_table(build_table(args.runs, args.histories, args.spectra, args.top_k), args.out)
        return
    from hessian_spectra.plots.common import save_figure
    from hessian_spectra.plots.large_batch import spectral_figure, surface_figure

    if args.what == "spectral":
        save_figure(spectral_figure(read_table(args.table), args.hessians), args.out)
    else:
        table = collect_landscapes(_runs(args.runs), args.landscapes)
        save_figure(surface_figure(table, args.kind), args.out)
