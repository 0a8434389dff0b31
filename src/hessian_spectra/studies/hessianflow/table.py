"""The tables of study `hessianflow` (seed 002) from its runs' tables: the tidy frames its figures draw
(``collect``) and the study's table (``build_table``): per run and epoch the dominant eigenvalue by power
iteration and by Lanczos, per run the final trace."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.divergence import divergence
from hessian_spectra.layout import without_seed
from hessian_spectra.plots.labels import run_labels
from hessian_spectra.tables import FULL, load_run, read_arrays, read_table, require_arrays

Paths = Sequence[str | Path]
TAG_COLUMNS = ("model", "label", "run", "seed", "diverged")
RUN_COLUMNS = ["run", "seed", "model", "label", "diverged", "diverged_because"]


def labels(runs: list[dict]) -> list[str]:
    """The optimizer's name in capitals (SGD, ABSA), with the run's variant where a model has two such
    configurations; every seed of a configuration shares its label."""
    configurations = {without_seed(run["key"]): run for run in runs}
    named = run_labels(list(configurations.values()), lambda run: run["optimizer"]["name"].upper(),
                       panel=lambda run: run["model"])
    label = dict(zip(configurations, named))
    return [label[without_seed(run["key"])] for run in runs]


def _tagged_runs(run_files: Paths, *per_run: Paths) -> list[tuple[dict, pd.DataFrame, dict]]:
    """Every run's run.json, its history (the first of ``per_run``) and its tag: the ``TAG_COLUMNS`` of its rows
    (``diverged``: why it diverged, or empty); every list in ``per_run`` holds one file per run."""
    if len({len(run_files), *map(len, per_run)}) != 1:
        raise ValueError(f"give one of each per-run file (history, eigen and final table, and for the figures density "
                         f"npz) per run.json: {len(run_files)} run.json, then {', '.join(map(str, map(len, per_run)))}")
    runs = [load_run(path) for path in run_files]
    tagged = []
    for run, label, history in zip(runs, labels(runs), per_run[0]):
        history = read_table(history)
        diverged = divergence(history, dataset_info(run["dataset"]).num_classes)
        tag = {"model": run["model"], "label": label, "run": run["key"], "seed": run["seed"], "diverged": diverged}
        tagged.append((run, history, tag))
    return tagged


def _eigen(path: str | Path, tag: dict) -> pd.DataFrame:
    table = read_table(path, required=("block", "quantity", "epoch", "value"))
    return table[table["block"] == FULL].assign(**tag)


def _trace(path: str | Path, tag: dict) -> pd.DataFrame:
    final = read_table(path, required=("block", "quantity", "value"))
    traces = final["quantity"].isin(["trace", "density_trace"])
    return final[(final["block"] == FULL) & traces].assign(**tag)


def collect(
    run_files: Paths, histories: Paths, eigen: Paths, finals: Paths, densities: Paths
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Tidy tables of all runs (every list in one order): (eigen, history, density, trace), each with ``model``,
    ``label`` (one per configuration), ``run``, ``seed`` and ``diverged`` (why the run diverged, or empty) columns,
    ``history`` also with ``test_size`` (the test accuracy's examples); ``trace`` holds the Hutchinson trace and the
    density's (quantities ``trace`` and ``density_trace``)."""
    eigen_parts, history_parts, density_parts, trace_parts = [], [], [], []
    for i, (run, history, tag) in enumerate(_tagged_runs(run_files, histories, eigen, finals, densities)):
        eigen_parts.append(_eigen(eigen[i], tag))
        history_parts.append(history.assign(**tag, test_size=dataset_info(run["dataset"]).test_size))
        trace_parts.append(_trace(finals[i], tag))
        arrays = read_arrays(densities[i], required=("blocks",))
        k = list(arrays["blocks"]).index(FULL)
        require_arrays(densities[i], arrays, (f"grid_{k}", f"density_{k}"))
        density_parts.append(
            pd.DataFrame({"eigenvalue": arrays[f"grid_{k}"], "density": arrays[f"density_{k}"], **tag})
        )
    return tuple(
        pd.concat(parts, ignore_index=True) for parts in (eigen_parts, history_parts, density_parts, trace_parts)
    )


def build_table(run_files: Paths, histories: Paths, eigen: Paths, finals: Paths) -> pd.DataFrame:
    """The study's table (every list in one order): ``RUN_COLUMNS`` then the runs' tables' own (the ``spectrum``
    command's: epoch, block, quantity, index, value, stderr, residual, ...): per run and epoch the dominant eigenvalue
    by power iteration (quantity ``power_eigenvalue``) and by Lanczos (``eigenvalue``) with their residuals, then
    per run its final Hutchinson trace (``trace``) and the density's (``density_trace``) with their standard
    errors; ``diverged`` says whether the run diverged, ``diverged_because`` why."""
    parts = []
    for i, (_run, _history, tag) in enumerate(_tagged_runs(run_files, histories, eigen, finals)):
        tag = {**tag, "diverged": bool(tag["diverged"]), "diverged_because": tag["diverged"]}
        parts += [_eigen(eigen[i], tag), _trace(finals[i], tag)]
    table = pd.concat(parts, ignore_index=True)
    table["probes"] = table["probes"].astype("Int64")  # a count, empty where a row has no probes
    return table[RUN_COLUMNS + [column for column in table if column not in RUN_COLUMNS]]
