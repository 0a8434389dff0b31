"""The table of study `large_batch` (seed 000): the top-k eigenvalues of every run's final ``spectrum`` tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hessian_spectra import layout
from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.divergence import divergence
from hessian_spectra.tables import load_run, read_table

HESSIANS = ("last_layer", "full")
TABLE_COLUMNS = [
    "run",
    "seed",
    "batch_size",
    "steps",
    "diverged",
    "diverged_because",
    "hessian",
    "block",
    "index",
    "value",
    "residual",
    "relative_residual",
    "tolerance",
    "converged",
    "products",
]


def build_table(
    run_files: Sequence[str | Path], histories: Sequence[str | Path], spectra: Sequence[str | Path], top_k: int
) -> pd.DataFrame:
    """The top-``top_k`` eigenvalues of every run and Hessian as one tidy table (``TABLE_COLUMNS``), with the
    optimizer steps the run took and whether it diverged (from its history, in the same order as ``run_files``); a
    spectrum table belongs to the run whose tables directory holds it."""
    if len(run_files) != len(histories):
        raise ValueError(f"{len(run_files)} runs but {len(histories)} histories")
    given = {Path(path).resolve(): path for path in spectra}
    parts = []
    for run_file, history in zip(run_files, histories):
        run = load_run(run_file)
        history = read_table(history, required=("steps",))
        steps = int(history["steps"].iloc[-1])
        diverged = divergence(history, dataset_info(run["dataset"]).num_classes)
        for hessian in HESSIANS:
            path = given.get(Path(layout.final_spectrum(run["key"], hessian, "tsv")).resolve())
            if path is None:
                continue
            table = read_table(path)
            table = table[(table["quantity"] == "eigenvalue") & (table["index"] <= top_k)]
            parts.append(
                table.assign(run=run["key"], seed=run["seed"], batch_size=run["batch_size"], steps=steps,
                             diverged=bool(diverged), diverged_because=diverged, hessian=hessian)
            )
    if not parts:
        raise ValueError("no spectrum table of the given runs among --spectra")
    return pd.concat(parts, ignore_index=True)[TABLE_COLUMNS]
