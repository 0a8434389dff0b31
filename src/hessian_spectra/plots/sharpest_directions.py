"""Study ``sharpest_directions`` (seed 001): its tidy tables, its four figures and its sharpness table.

Each run contributes its ``run.json`` (the run), ``history.tsv`` (accuracies per epoch) and its ``trajectory``
table (top-K eigenvalues per checkpoint). Which runs form the learning-rate grid, the batch-size grid
and the gamma comparison is derived from the runs themselves: SGD runs equal in every setting but ``lr`` (or
``batch_size``) form one grid; NSGD runs equal in every setting but ``optimizer.gamma`` form one comparison, joined
by the SGD run equal to them in every setting but the optimizer (NSGD with gamma = 1 is SGD).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib import ticker
import numpy as np
import pandas as pd

from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.divergence import divergence
from hessian_spectra.plots.common import UNCONVERGED, unconverged_handle, use_style
from hessian_spectra.tables import read_table

# run keys that never distinguish runs of this study (bookkeeping, or the same for all of its runs)
_NOT_SETTINGS = ("key", "variant", "study", "name", "subset", "hessian_subset")
_SHORT = {"lr": "lr", "batch_size": "B", "momentum": "m", "l2": "L2", "optimizer.gamma": "γ", "optimizer.kk": "KK"}
EPOCH_LABEL = "epoch (0 = initial weights)"


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
    tell two runs apart."""
    opt = run["optimizer"]
    return {
        "run": run["key"],
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
        run = json.loads(Path(run_file).read_text())
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


def _identity(settings: dict, ignore: Sequence[str]) -> tuple:
    """The settings without the keys ``ignore`` names (and their sub-keys), hashable."""
    kept = (k for k in settings if not any(k == i or k.startswith(f"{i}.") for i in ignore))
    return tuple(sorted((k, settings[k]) for k in kept))


def grid_groups(runs: pd.DataFrame, varied: str) -> list[pd.DataFrame]:
    """SGD runs equal in every setting but ``varied``, in groups of at least two values, sorted by ``varied``."""
    sgd = runs[runs["optimizer"] == "sgd"]
    groups: dict[tuple, list[int]] = {}
    for i, settings in sgd["settings"].items():
        groups.setdefault(_identity(settings, [varied]), []).append(i)
    return [
        sgd.loc[rows].sort_values(varied)
        for rows in groups.values()
        if sgd.loc[rows, varied].nunique() >= 2
    ]


def gamma_groups(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """NSGD runs equal in every setting but gamma, plus the SGD run equal to them but for the optimizer."""
    nsgd, sgd = runs[runs["optimizer"] == "nsgd"], runs[runs["optimizer"] == "sgd"]
    groups: dict[tuple, list[int]] = {}
    for i, settings in nsgd["settings"].items():
        groups.setdefault(_identity(settings, ["optimizer.gamma"]), []).append(i)
    out = []
    for rows in groups.values():
        base = _identity(runs.loc[rows[0], "settings"], ["optimizer"])
        baseline = [i for i, s in sgd["settings"].items() if _identity(s, ["optimizer"]) == base]
        members = runs.loc[rows + baseline].copy()
        members["gamma"] = members["gamma"].fillna(1.0)
        out.append(members.sort_values(["gamma", "optimizer"]))
    return out


def _group_title(group: pd.DataFrame, shown: Sequence[str]) -> str:
    first = group.iloc[0]
    parts = [f"{first['model']} / {first['dataset']}"]
    parts += [f"{_SHORT[k]}={first[k]:g}" for k in shown if group[k].nunique() == 1 and not pd.isna(first[k])]
    return ", ".join(parts)


def _placeholder(text: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def _positive_log(ax, values: pd.Series) -> None:
    """Log y (ticks at 1, 2, 5 x 10^k, plain numbers) when every value is positive."""
    if len(values) and (values > 0).all():
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _mark_unconverged(ax, table: pd.DataFrame) -> bool:
    bad = table[~table["converged"]]
    if len(bad):
        ax.scatter(bad["epoch"], bad["value"], **UNCONVERGED, label=unconverged_handle(table).get_label())
    return bool(len(bad))


def spectrum_trajectory_figure(tables: StudyTables) -> plt.Figure:
    """lambda_i vs epoch, i = 1..K, one panel per run (a red X marks eigenvalues whose relative residual is above
    the tolerance)."""
    use_style()
    runs = tables.runs
    cols = min(4, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharex=True)
    for ax, (_, run) in zip(axes.flat, runs.iterrows()):
        traj = tables.eigen(run["run"])
        palette = plt.get_cmap("viridis")(np.linspace(0, 0.9, traj["index"].max()))
        for index, part in traj.groupby("index"):
            ax.plot(part["epoch"], part["value"], color=palette[index - 1], label=f"λ{index}")
        _mark_unconverged(ax, traj)
        _positive_log(ax, traj["value"])
        ax.set_title(run["label"], fontsize=9)
        ax.set_xlabel(EPOCH_LABEL)
        ax.set_ylabel("Hessian eigenvalue")
    for ax in axes.flat[len(runs) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in axes.flat[1 : len(runs)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.02), frameon=False)
    fig.suptitle("Top-K Hessian eigenvalues along training (Lanczos, L2 included)", y=1.06)
    fig.tight_layout()
    return fig


def grid_figure(tables: StudyTables, varied: str) -> plt.Figure:
    """lambda_1 and lambda_2 vs epoch (log y), one line per value of ``varied`` (``lr`` or ``batch_size``)."""
    use_style()
    name = {"lr": "learning rate", "batch_size": "batch size"}[varied]
    groups = grid_groups(tables.runs, varied)
    if not groups:
        return _placeholder(f"No SGD runs in this config differ only in the {name}: nothing to compare.")
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.6 * len(groups)), squeeze=False)
    other = "batch_size" if varied == "lr" else "lr"
    for row, group in zip(axes, groups):
        palette = plt.get_cmap("plasma")(np.linspace(0, 0.85, len(group)))
        for color, (_, run) in zip(palette, group.iterrows()):
            for ax, index in zip(row, (1, 2)):
                part = tables.eigen(run["run"], index)
                ax.plot(part["epoch"], part["value"], color=color, label=f"{_SHORT[varied]}={run[varied]:g}")
                _mark_unconverged(ax, part)
        for ax, index in zip(row, (1, 2)):
            _positive_log(ax, tables.eigen(group["run"], index)["value"])
            ax.set_title(f"λ{index}: {_group_title(group, [other, 'momentum', 'l2'])}", fontsize=10)
            ax.set_xlabel(EPOCH_LABEL)
            ax.set_ylabel(f"λ{index}")
        row[1].legend(title=name, fontsize=8)
    fig.tight_layout()
    return fig


def nsgd_gamma_figure(tables: StudyTables) -> plt.Figure:
    """lambda_1 and validation accuracy vs epoch, one line per gamma (the matching SGD run is gamma = 1); a run
    that diverged (``divergence``) is drawn dotted and grey, its legend entry saying why, never as a result."""
    use_style()
    groups = gamma_groups(tables.runs)
    if not groups:
        return _placeholder("No NSGD runs in this config: nothing to compare.")
    acc = "valid_acc" if "valid_acc" in tables.histories and tables.histories["valid_acc"].notna().any() else "test_acc"
    acc_label = {"valid_acc": "validation accuracy", "test_acc": "test accuracy (no validation split)"}[acc]
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.6 * len(groups)), squeeze=False)
    for (ax_eig, ax_acc), group in zip(axes, groups):
        palette = plt.get_cmap("coolwarm")(np.linspace(0, 1, len(group)))
        for color, (_, run) in zip(palette, group.iterrows()):
            label = f"γ={run['gamma']:g}" + (" (SGD)" if run["optimizer"] == "sgd" else "")
            style = dict(color=color)
            if run["diverged"]:
                label += f" DIVERGED: {run['diverged']}"
                style = dict(color="0.55", linestyle=":", marker="x")
            traj = tables.eigen(run["run"], 1)
            ax_eig.plot(traj["epoch"], traj["value"], label=label, **style)
            _mark_unconverged(ax_eig, traj)
            hist = tables.history(run["run"])
            ax_acc.plot(hist["epoch"], hist[acc], label=label, **style)
        kk = group["kk"].dropna().iloc[0]
        title = f"{_group_title(group, ['lr', 'batch_size', 'momentum', 'l2'])}, KK={kk:g}"
        _positive_log(ax_eig, tables.eigen(group["run"], 1)["value"])
        ax_eig.set(title=f"λ1: {title}", xlabel=EPOCH_LABEL, ylabel="λ1")
        ax_acc.set(title=title, xlabel=EPOCH_LABEL, ylabel=acc_label)
        ax_eig.title.set_fontsize(10)
        ax_acc.title.set_fontsize(10)
        ax_acc.legend(title="NSGD overshoot", fontsize=8)
    fig.tight_layout()
    return fig


def sharpness_table(tables: StudyTables) -> pd.DataFrame:
    """Per run at its last epoch: lambda_max and ||H||_F ~ sqrt(sum of top-K lambda_i^2), with their Lanczos
    relative residuals (the top-K's largest), the tolerance and convergence (relative residual <= tolerance), plus
    the largest lambda_max along training, the final accuracies, and whether the run diverged (and why)."""
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

