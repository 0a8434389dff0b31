"""The tables of study ``sharpest_directions`` (seed 001): its runs, trajectories and histories as tidy frames
(``load_study``, what the figures draw) and the sharpness table (``build_table``, one row per run).

Each run contributes its ``run.json`` (the run), ``history.tsv`` (accuracies per epoch) and its ``trajectory``
table (top-K eigenvalues per checkpoint).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.divergence import divergence
from hessian_spectra.layout import without_seed
from hessian_spectra.tables import load_run, read_table

# run keys that never distinguish configurations of this study (bookkeeping, the same for all of its runs, or the
# seed: runs that differ only by it are repeats of one configuration)
_NOT_SETTINGS = ("key", "variant", "study", "name", "subset", "hessian_subset", "seed")


@dataclass
class StudyTables:
    """One row per run (``runs``), per run x epoch x eigenvalue index (``trajectories``), per run x epoch
    (``histories``); ``run`` (the run key) links them."""

    runs: pd.DataFrame
    trajectories: pd.DataFrame
    histories: pd.DataFrame

    def eigen(self, runs: str | Sequence[str], index: int | None = None) -> pd.DataFrame:
        """Trajectory rows of one run or several, of every eigenvalue index or of one."""
        rows = self.trajectories[self.trajectories["run"].isin([runs] if isinstance(runs, str) else list(runs))]
        return rows if index is None else rows[rows["index"] == index]

    def history(self, run: str) -> pd.DataFrame:
        """History rows of one run, by epoch."""
        return self.histories[self.histories["run"] == run].sort_values("epoch")


def _flatten(run: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in run.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _label(run: dict) -> str:
    opt = run["optimizer"]
    text = f"{run['model']} / {run['dataset']}\n{opt['name']} lr={run['lr']:g} B={run['batch_size']}"
    if opt["name"] == "nsgd":
        text += f" γ={opt['gamma']:g} KK={opt['kk']}"
    if run["momentum"]:
        text += f" m={run['momentum']:g}"
    if run["l2"]:
        text += f" L2={run['l2']:g}"
    return text


def run_row(run: dict) -> dict:
    """A run's row of ``StudyTables.runs``; ``settings`` holds every setting (dotted keys, JSON values) that may
    tell two configurations apart, ``configuration`` the run key without its seed."""
    opt = run["optimizer"]
    return {
        "run": run["key"],
        "seed": run["seed"],
        "configuration": without_seed(run["key"]),
        "label": _label(run),
        "model": run["model"],
        "dataset": run["dataset"],
        "optimizer": opt["name"],
        "lr": run["lr"],
        "batch_size": run["batch_size"],
        "momentum": run["momentum"],
        "l2": run["l2"],
        "gamma": opt.get("gamma", math.nan),
        "kk": opt.get("kk", math.nan),
        "epochs": run["epochs"],
        "valid_size": run["valid_size"],
        "test_size": dataset_info(run["dataset"]).test_size,
        "settings": {
            k: json.dumps(v, sort_keys=True)
            for k, v in _flatten(run).items()
            if not any(k == name or k.startswith(f"{name}.") for name in _NOT_SETTINGS)
        },
    }


def load_study(
    run_files: Sequence[str | Path], histories: Sequence[str | Path], trajectories: Sequence[str | Path]
) -> StudyTables:
    """Read every run's ``run.json``, history and trajectory table (three lists in the same order) into tidy
    frames."""
    if not len(run_files) == len(histories) == len(trajectories):
        raise ValueError("give one history and one trajectory table per run.json")
    runs, traj_parts, history_parts = [], [], []
    for run_file, history, trajectory in zip(run_files, histories, trajectories):
        run = load_run(run_file)
        runs.append(run_row(run))
        columns = ("epoch", "index", "value", "residual", "relative_residual", "tolerance", "converged")
        table = read_table(trajectory, required=("block", "quantity", *columns))
        table = table[(table["block"] == "full") & (table["quantity"] == "eigenvalue")]
        traj_parts.append(table[list(columns)].assign(run=run["key"]))
        history_parts.append(read_table(history).assign(run=run["key"]))
    traj = pd.concat(traj_parts, ignore_index=True)
    traj["converged"] = traj["converged"].astype(str).str.lower().eq("true")
    runs = pd.DataFrame(runs)
    runs["diverged"] = [
        divergence(history, dataset_info(dataset).num_classes)
        for history, dataset in zip(history_parts, runs["dataset"])
    ]
    return StudyTables(runs, traj, pd.concat(history_parts, ignore_index=True))


def build_table(
    run_files: Sequence[str | Path], histories: Sequence[str | Path], trajectories: Sequence[str | Path]
) -> pd.DataFrame:
    """The sharpness table of the runs (``load_study``'s three lists): per run (so per seed) at its last epoch:
    lambda_max and ||H||_F ~ sqrt(sum of top-K lambda_i^2), with their
    Lanczos relative residuals (the top-K's largest), the tolerance and convergence (relative residual <=
    tolerance), plus the optimizer steps the run took, the largest lambda_max along training, the final accuracies,
    and whether the run diverged (and why)."""
    tables = load_study(run_files, histories, trajectories)
    rows = []
    for _, run in tables.runs.iterrows():
        traj = tables.eigen(run["run"])
        last = traj[traj["epoch"] == traj["epoch"].max()].sort_values("index")
        top = traj[traj["index"] == 1]
        peak = top.loc[top["value"].idxmax()]
        hist = tables.history(run["run"]).iloc[-1]
        rows.append(
            {
                "run": run["run"],
                "seed": run["seed"],
                "model": run["model"],
                "dataset": run["dataset"],
                "optimizer": run["optimizer"],
                "gamma": run["gamma"],
                "kk": run["kk"],
                "lr": run["lr"],
                "batch_size": run["batch_size"],
                "momentum": run["momentum"],
                "l2": run["l2"],
                "epoch": int(last["epoch"].iloc[0]),
                "steps": int(hist["steps"]),
                "top_k": len(last),
                "lambda_max": last["value"].iloc[0],
                "lambda_max_residual": last["residual"].iloc[0],
                "lambda_max_relative_residual": last["relative_residual"].iloc[0],
                "lambda_max_converged": bool(last["converged"].iloc[0]),
                "frobenius_topk": float(np.sqrt((last["value"] ** 2).sum())),
                "topk_relative_residual": last["relative_residual"].max(),
                "topk_converged": bool(last["converged"].all()),
                "peak_lambda_max": peak["value"],
                "peak_epoch": int(peak["epoch"]),
                "peak_relative_residual": peak["relative_residual"],
                "peak_converged": bool(peak["converged"]),
                "tolerance": traj["tolerance"].max(),
                "final_valid_acc": hist.get("valid_acc", math.nan),
                "final_test_acc": hist["test_acc"],
                "diverged": bool(run["diverged"]),
                "diverged_because": run["diverged"],
            }
        )
    return pd.DataFrame(rows)

