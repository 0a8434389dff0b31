"""Figures of study ``sharpest_directions`` (seed 001), drawn from its tidy tables
(``studies.sharpest_directions.table.load_study``).

Which runs form the learning-rate grid, the batch-size grid
and the gamma comparison is derived from the runs themselves: SGD runs equal in every setting but ``lr`` (or
``batch_size``) form one grid; NSGD runs equal in every setting but ``optimizer.gamma`` form one comparison, joined
by the SGD run equal to them in every setting but the optimizer (NSGD with gamma = 1 is SGD). The training seed is
not a setting: runs that differ only by seed are one configuration, drawn as the mean over its seeds that did not
diverge with a band from the lowest to the highest; a diverged seed is drawn apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.lines import Line2D

from hessian_spectra.plots.common import (
    ACCURACY_BAND_ALPHA,
    ACCURACY_BAND_LABEL,
    DIVERGED_STYLE,
    UNCONVERGED,
    accuracy_band,
    unconverged_handle,
    use_style,
)
from hessian_spectra.plots.seeds import band_handle, plot_mean_band
from hessian_spectra.studies.sharpest_directions.table import StudyTables

_SHORT = {"lr": "lr", "batch_size": "B", "momentum": "m", "l2": "L2", "optimizer.gamma": "γ", "optimizer.kk": "KK"}
EPOCH_LABEL = "epoch (0 = initial weights)"
EDGE_STYLE = dict(linestyle="-.", linewidth=1.1, alpha=0.9)  # the edge of stability (2/eta) lines


def stability_edge(lr: float, momentum: float = 0.0, gamma: float = 1.0) -> float:
    """The largest curvature gradient descent is stable at on a quadratic: 2 (1 + momentum) / (gamma * lr), the
    edge of stability where lambda_max settles in full-batch training (2/eta without momentum); NSGD steps
    ``gamma * lr`` along its top directions."""
    return 2.0 * (1.0 + momentum) / (gamma * lr)


def _edge_label(lr: float, momentum: float, gamma: float = 1.0) -> str:
    step = "η" if gamma == 1.0 else "γη"
    top = "2" if not momentum else "2(1+m)"
    return f"{top}/{step} = {stability_edge(lr, momentum, gamma):.4g}"


def _draw_edge(ax, runs: pd.DataFrame, colour, gamma: float = 1.0, legend: bool = True) -> None:
    """The edge-of-stability line of one configuration's runs (one lr and momentum), in its colour, labelled in the
    legend or (``legend=False``) by a text on the line."""
    first = runs.iloc[0]
    edge = stability_edge(first["lr"], first["momentum"], gamma)
    label = _edge_label(first["lr"], first["momentum"], gamma)
    ax.axhline(edge, color=colour, **EDGE_STYLE, label=label if legend else None)
    if not legend:
        ax.text(0.99, edge, label, transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8,
                color=colour)


def _identity(settings: dict, ignore: Sequence[str]) -> tuple:
    """The settings without the keys ``ignore`` names (and their sub-keys), hashable."""
    kept = (k for k in settings if not any(k == i or k.startswith(f"{i}.") for i in ignore))
    return tuple(sorted((k, settings[k]) for k in kept))


def grid_groups(runs: pd.DataFrame, varied: str) -> list[pd.DataFrame]:
    """SGD runs equal in every setting but ``varied`` (every seed of each), in groups of at least two values,
    sorted by ``varied`` and seed."""
    sgd = runs[runs["optimizer"] == "sgd"]
    groups: dict[tuple, list[int]] = {}
    for i, settings in sgd["settings"].items():
        groups.setdefault(_identity(settings, [varied]), []).append(i)
    return [
        sgd.loc[rows].sort_values([varied, "seed"])
        for rows in groups.values()
        if sgd.loc[rows, varied].nunique() >= 2
    ]


def gamma_groups(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """NSGD runs equal in every setting but gamma, plus the SGD runs equal to them but for the optimizer (every seed
    of each), sorted by gamma and seed."""
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
        out.append(members.sort_values(["gamma", "optimizer", "seed"]))
    return out


def _group_title(group: pd.DataFrame, shown: Sequence[str]) -> str:
    first = group.iloc[0]
    parts = [f"{first['model']} / {first['dataset']}"]
    parts += [f"{_SHORT[k]}={first[k]:g}" for k in shown if group[k].nunique() == 1 and not pd.isna(first[k])]
    return ", ".join(parts)


def _rows(count: int) -> tuple[plt.Figure, list]:
    """A figure of ``count`` rows of two panels: (row, its two axes) per row, each row a subfigure that holds its
    legend underneath, so long legend entries never cover a curve."""
    fig = plt.figure(figsize=(10, 4.2 * count), layout="constrained")
    return fig, [(row, row.subplots(1, 2)) for row in np.atleast_1d(fig.subfigures(count, 1))]


def _row_legend(row, axes, seeds: int, title: str) -> None:
    """The legend of one row's panels, under them."""
    handles, labels = _legend_entries(axes, seeds)
    row.legend(handles, labels, title=title, fontsize=8, ncol=min(2, len(labels)), loc="outside lower center")


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


def _mark_unconverged(ax, table: pd.DataFrame, y: pd.Series | None = None) -> None:
    """A red X on every epoch of ``table`` with an unconverged eigenvalue, at ``y`` (by epoch) or at its value."""
    bad = table[~table["converged"]]
    if len(bad):
        at = bad["value"] if y is None else y.loc[bad["epoch"].unique()]
        epochs = bad["epoch"] if y is None else at.index
        ax.scatter(epochs, at, **UNCONVERGED, label=unconverged_handle(table).get_label())


def _draw_seeds(
    ax, runs: pd.DataFrame, rows_of: Callable[[str], pd.DataFrame], y: str, label: str, colour, several: bool
) -> None:
    """``y`` vs epoch of one configuration's seeds (``runs``; ``rows_of`` gives a run's rows): the mean over the
    seeds that did not diverge with their band, a red X on the mean at every epoch where one of them is not
    converged (eigenvalue rows); every diverged seed apart, grey and dotted, its label saying why."""
    diverged = runs["diverged"].astype(bool)
    if (~diverged).any():
        rows = pd.concat([rows_of(run) for run in runs.loc[~diverged, "run"]], ignore_index=True)
        stats = plot_mean_band(ax, rows, "epoch", y, colour, label=label)
        if "converged" in rows:
            _mark_unconverged(ax, rows, stats.set_index("epoch")["mean"])
    for _, run in runs[diverged].iterrows():
        rows = rows_of(run["run"])
        name = f"{label}, seed {run['seed']}" if several else label
        ax.plot(rows["epoch"], rows[y], label=f"{name} DIVERGED: {run['diverged']}", **DIVERGED_STYLE)
        if "converged" in rows:
            _mark_unconverged(ax, rows)


def _seeds(runs: pd.DataFrame) -> int:
    """The most seeds any configuration of ``runs`` has."""
    return int(runs.groupby("configuration")["seed"].nunique().max()) if len(runs) else 0


def _banded(runs: pd.DataFrame) -> int:
    """The most seeds in any configuration's mean (those that did not diverge): a band is drawn above one."""
    return _seeds(runs[~runs["diverged"].astype(bool)])


def _legend_entries(axes, seeds: int) -> tuple[list, list[str]]:
    """The labelled artists of ``axes``, each label once, then the seeds' band entry where a band spans several
    (``seeds``)."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if seeds > 1:
        band = band_handle(seeds)
        handles.append(band)
        labels.append(band.get_label())
    return handles, labels


def _diverged_note(runs: pd.DataFrame, several: bool) -> str:
    """Title lines naming the configuration's diverged seeds and why."""
    return "".join(
        f"\n{f'seed {run.seed} ' if several else ''}DIVERGED: {run.diverged}"
        for run in runs.itertuples() if run.diverged
    )


def spectrum_trajectory_figure(tables: StudyTables) -> plt.Figure:
    """lambda_i vs epoch, i = 1..K, one panel per configuration: the mean over its seeds with their band (a red X
    marks epochs where some seed's eigenvalue has a relative residual above the tolerance); a diverged seed is
    drawn apart (grey, dotted) and named in the title."""
    use_style()
    configurations = list(tables.runs.groupby("configuration", sort=False))
    seeds = _seeds(tables.runs)
    cols = min(4, len(configurations))
    rows = math.ceil(len(configurations) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharex=True)
    for ax, (_, runs) in zip(axes.flat, configurations):
        traj = tables.eigen(runs["run"])
        palette = plt.get_cmap("viridis")(np.linspace(0, 0.9, traj["index"].max()))
        for index in sorted(traj["index"].unique()):
            _draw_seeds(ax, runs, lambda run: tables.eigen(run, index), "value", f"λ{index}", palette[index - 1],
                        seeds > 1)
        _draw_edge(ax, runs, "0.3", 1.0 if runs["optimizer"].iloc[0] == "sgd" else runs["gamma"].iloc[0], False)
        _positive_log(ax, traj["value"])
        count = f" ({runs['seed'].nunique()} seeds)" if seeds > 1 else ""
        ax.set_title(runs["label"].iloc[0] + count + _diverged_note(runs, seeds > 1), fontsize=9)
        ax.set_xlabel(EPOCH_LABEL)
        ax.set_ylabel("Hessian eigenvalue")
    for ax in axes.flat[len(configurations) :]:
        ax.axis("off")
    handles, labels = _legend_entries(axes.flat[: len(configurations)], _banded(tables.runs))
    keep = [i for i, label in enumerate(labels) if "DIVERGED" not in label]
    handles, labels = [handles[i] for i in keep], [labels[i] for i in keep]
    handles.append(Line2D([], [], color="0.3", **EDGE_STYLE))
    labels.append("edge of stability 2/η (NSGD: 2/(γη))")
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.02), frameon=False)
    fig.suptitle("Top-K Hessian eigenvalues along training (Lanczos, L2 included)", y=1.06)
    fig.tight_layout()
    return fig


def grid_figure(tables: StudyTables, varied: str) -> plt.Figure:
    """lambda_1 and lambda_2 vs epoch (log y), one line per value of ``varied`` (``lr`` or ``batch_size``): the mean
    over its seeds that did not diverge, with their band; a diverged seed is drawn apart, grey and dotted."""
    use_style()
    name = {"lr": "learning rate", "batch_size": "batch size"}[varied]
    groups = grid_groups(tables.runs, varied)
    if not groups:
        return _placeholder(f"No SGD runs in this config differ only in the {name}: nothing to compare.")
    seeds = _seeds(tables.runs)
    fig, rows = _rows(len(groups))
    other = "batch_size" if varied == "lr" else "lr"
    for (subfigure, row), group in zip(rows, groups):
        values = list(group.groupby(varied, sort=True))
        palette = plt.get_cmap("plasma")(np.linspace(0, 0.85, len(values)))
        for position, (color, (value, runs)) in enumerate(zip(palette, values)):
            for ax, index in zip(row, (1, 2)):
                _draw_seeds(ax, runs, lambda run: tables.eigen(run, index), "value", f"{_SHORT[varied]}={value:g}",
                            color, seeds > 1)
            if varied == "lr" or position == 0:  # a batch-size grid has one lr: one edge
                _draw_edge(row[0], runs, color if varied == "lr" else "0.3")
        for ax, index in zip(row, (1, 2)):
            _positive_log(ax, tables.eigen(group["run"], index)["value"])
            ax.set_title(f"λ{index}: {_group_title(group, [other, 'momentum', 'l2'])}", fontsize=10)
            ax.set_xlabel(EPOCH_LABEL)
            ax.set_ylabel(f"λ{index}")
        _row_legend(subfigure, row, _banded(group), name)
    return fig


def nsgd_gamma_figure(tables: StudyTables) -> plt.Figure:
    """lambda_1 and validation accuracy vs epoch, one line per gamma (the matching SGD runs are gamma = 1): the
    mean over its seeds with their band; a seed that diverged (``divergence``) is not in the mean but drawn apart,
    dotted and grey, its legend entry saying why, never as a result."""
    use_style()
    groups = gamma_groups(tables.runs)
    if not groups:
        return _placeholder("No NSGD runs in this config: nothing to compare.")
    acc = "valid_acc" if "valid_acc" in tables.histories and tables.histories["valid_acc"].notna().any() else "test_acc"
    acc_label = {"valid_acc": "validation accuracy", "test_acc": "test accuracy (no validation split)"}[acc]
    seeds = _seeds(tables.runs)
    fig, rows = _rows(len(groups))
    for (subfigure, (ax_eig, ax_acc)), group in zip(rows, groups):
        binomial = False
        configurations = list(group.groupby(["gamma", "optimizer"], sort=True))
        palette = plt.get_cmap("coolwarm")(np.linspace(0, 1, len(configurations)))
        for color, ((gamma, optimizer), runs) in zip(palette, configurations):
            label = f"γ={gamma:g}" + (" (SGD)" if optimizer == "sgd" else "")
            _draw_seeds(ax_eig, runs, lambda run: tables.eigen(run, 1), "value", label, color, seeds > 1)
            _draw_edge(ax_eig, runs, color, gamma)
            _draw_seeds(ax_acc, runs, tables.history, acc, label, color, seeds > 1)
            kept = runs[~runs["diverged"].astype(bool)]
            samples = kept["valid_size" if acc == "valid_acc" else "test_size"].min()
            if len(kept) == 1 and samples > 0:  # one seed: the accuracy's own error (several: their range)
                history = tables.history(kept["run"].iloc[0])
                accuracy_band(ax_acc, history["epoch"], history[acc], samples, color)
                binomial = True
        kk = group["kk"].dropna().iloc[0]
        title = f"{_group_title(group, ['lr', 'batch_size', 'momentum', 'l2'])}, KK={kk:g}"
        _positive_log(ax_eig, tables.eigen(group["run"], 1)["value"])
        ax_eig.set(title=f"λ1: {title}", xlabel=EPOCH_LABEL, ylabel="λ1")
        ax_acc.set(title=title, xlabel=EPOCH_LABEL, ylabel=acc_label)
        ax_eig.title.set_fontsize(10)
        ax_acc.title.set_fontsize(10)
        if binomial:
            ax_acc.fill_between([], [], color="0.5", alpha=2 * ACCURACY_BAND_ALPHA, label=ACCURACY_BAND_LABEL)
        _row_legend(subfigure, [ax_acc, ax_eig], _banded(group), "NSGD overshoot; edge of stability")
    return fig
