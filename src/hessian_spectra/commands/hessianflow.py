"""``hessian-spectra hessianflow``: the figures of study `hessianflow` from its runs' tables (torch-free).

``figures`` reads every run's ``run.json`` and history, its ``dominant-eigen`` table and its final trace and
density (``spectrum`` at the final checkpoint: a table and an npz), all lists in one order.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra hessianflow figures``: every run's input tables and the three figures' paths."""
    commands = parser.add_subparsers(dest="what", required=True)
    figures = commands.add_parser("figures", help="dominant eigenvalue, ABSA schedule and final density figures")
    figures.add_argument("--runs", nargs="+", required=True, help="run.json of every run of the study")
    figures.add_argument("--histories", nargs="+", required=True, help="their history.tsv, same order")
    figures.add_argument("--eigen", nargs="+", required=True, help="their dominant-eigen tables, same order")
    figures.add_argument("--final", nargs="+", required=True, help="their final trace/density tables, same order")
    figures.add_argument("--densities", nargs="+", required=True, help="their final density npz files, same order")
    figures.add_argument("--dominant-eigenvalue", required=True, help="output PNG: lambda_1 vs epoch")
    figures.add_argument("--absa-schedule", required=True, help="output PNG: batch size, lr, test accuracy vs epoch")
    figures.add_argument("--esd-final", required=True, help="output PNG: spectral density at the final checkpoint")


def labels(runs: list[dict]) -> list[str]:
    """The optimizer's name in capitals (SGD, ABSA), with the run's variant where a model has two such
    configurations; every seed of a configuration shares its label."""
    from hessian_spectra.layout import without_seed
    from hessian_spectra.plots.labels import run_labels

    configurations = {without_seed(run["key"]): run for run in runs}
    named = run_labels(list(configurations.values()), lambda run: run["optimizer"]["name"].upper(),
                       panel=lambda run: run["model"])
    label = dict(zip(configurations, named))
    return [label[without_seed(run["key"])] for run in runs]


def collect(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Tidy tables of all runs: (eigen, history, density, trace), each with ``model``, ``label`` (one per
    configuration), ``run``, ``seed`` and ``diverged`` (why the run diverged, or empty) columns, ``history`` also
    with ``test_size`` (the test accuracy's examples);
    ``trace`` holds the Hutchinson trace and the density's (quantities ``trace`` and ``density_trace``)."""
    import pandas as pd

    from hessian_spectra.data.catalog import dataset_info
    from hessian_spectra.divergence import divergence
    from hessian_spectra.tables import FULL, load_run, read_arrays, read_table, require_arrays

    runs = [load_run(path) for path in args.runs]
    counts = {len(paths) for paths in (args.runs, args.histories, args.eigen, args.final, args.densities)}
    if len(counts) != 1:
        raise ValueError("give one history, eigen table, final table and density npz per run.json")
    eigen, history, density, trace = [], [], [], []
    for i, (run, label) in enumerate(zip(runs, labels(runs))):
        runs_history = read_table(args.histories[i])
        diverged = divergence(runs_history, dataset_info(run["dataset"]).num_classes)
        tag = {"model": run["model"], "label": label, "run": run["key"], "seed": run["seed"], "diverged": diverged}
        table = read_table(args.eigen[i], required=("block", "quantity", "epoch", "value"))
        eigen.append(table[table["block"] == FULL].assign(**tag))
        history.append(runs_history.assign(**tag, test_size=dataset_info(run["dataset"]).test_size))
        final = read_table(args.final[i], required=("block", "quantity", "value"))
        traces = final["quantity"].isin(["trace", "density_trace"])
        trace.append(final[(final["block"] == FULL) & traces].assign(**tag))
        arrays = read_arrays(args.densities[i], required=("blocks",))
        k = list(arrays["blocks"]).index(FULL)
        require_arrays(args.densities[i], arrays, (f"grid_{k}", f"density_{k}"))
        density.append(pd.DataFrame({"eigenvalue": arrays[f"grid_{k}"], "density": arrays[f"density_{k}"], **tag}))
    return tuple(pd.concat(parts, ignore_index=True) for parts in (eigen, history, density, trace))


def run(args: argparse.Namespace) -> None:
    """Draw the dominant-eigenvalue, ABSA-schedule and final-ESD figures from the runs' tables."""
    from hessian_spectra.plots.common import save_figure
    from hessian_spectra.plots.hessianflow import absa_schedule_figure, dominant_eigenvalue_figure, esd_final_figure

    eigen, history, density, trace = collect(args)
    save_figure(dominant_eigenvalue_figure(eigen, history), args.dominant_eigenvalue)
    save_figure(absa_schedule_figure(history), args.absa_schedule)
    save_figure(esd_final_figure(density, trace), args.esd_final)
