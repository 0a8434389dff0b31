"""Figures of study `hessianflow` (seed 002): dominant eigenvalue per epoch, ABSA's schedule, final spectral density.

Every function reads tidy tables with ``model``, ``label`` (one per configuration, e.g. SGD / ABSA, shared by its
seeds), ``run``, ``seed`` and ``diverged`` columns; models are panels (columns) and labels keep one colour across
all three figures. Runs repeated over seeds are drawn as their mean with a band from the lowest to the highest seed
where they can be averaged, a thin line per seed where they cannot; a diverged run is never in a mean.
"""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from hessian_spectra.plots.common import UNCONVERGED, unconverged_handle, use_style
from hessian_spectra.plots.seeds import band_handle, plot_mean_band

METHODS = {"eigenvalue": ("Lanczos top-1", "-", "o"), "power_eigenvalue": ("power iteration (source)", "--", "^")}
DIVERGED_COLOUR = (0.6, 0.6, 0.6)  # a diverged run is drawn, but never in a result's colour
DIVERGED_STYLE = dict(color=DIVERGED_COLOUR, ls=":", marker="x", ms=4, lw=1.2)
SYMLOG_RANGE = 1e-2  # linear within 1% of the largest |lambda| when an estimate is negative
DENSITY_FLOOR = 1e-7  # PyHessian's get_esd_plot adds this before its log scale


def _palette(labels) -> dict[str, tuple]:
    ordered = list(dict.fromkeys(labels))
    return dict(zip(ordered, sns.color_palette("colorblind", len(ordered))))


def _panels(models, rows: int = 1, height: float = 3.6):
    """A figure with one column of ``rows`` axes per model."""
    return plt.subplots(
        rows, len(models), figsize=(4.8 * len(models), height * rows), squeeze=False, sharex="col", layout="constrained"
    )


def _kept(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of the runs that did not diverge."""
    return runs[~runs["diverged"].astype(bool)]


def _diverged(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Every diverged run's rows, by run key."""
    return list(runs[runs["diverged"].astype(bool)].groupby("run", sort=False))


def _diverged_label(rows: pd.DataFrame, several: bool) -> str:
    """A diverged run's legend entry: its label, its seed where there are several, and why."""
    first = rows.iloc[0]
    seed = f", seed {first['seed']}" if several else ""
    return f"{first['label']}{seed} DIVERGED: {first['diverged']}"


def _several_seeds(table: pd.DataFrame) -> int:
    """The most seeds one label of one model has (0 for an empty table)."""
    return int(table.groupby(["model", "label"])["seed"].nunique().max()) if len(table) else 0


def _draw_estimate(ax, rows: pd.DataFrame, colour, style: str, marker: str) -> bool:
    """One estimate of lambda_1 vs epoch: the mean over the rows' seeds with their band, a marker per epoch and a
    red X on the mean where any seed's estimate is not converged; whether there was one."""
    stats = plot_mean_band(ax, rows, "epoch", "value", colour, ls=style, lw=1.5)
    ok = rows["converged"].eq(True).groupby(rows["epoch"]).all().to_numpy()
    ax.scatter(stats["epoch"], stats["mean"], marker=marker, color=colour, s=22, zorder=3)
    ax.scatter(stats["epoch"][~ok], stats["mean"][~ok], **UNCONVERGED)
    return bool((~ok).any())


def dominant_eigenvalue_figure(eigen: pd.DataFrame) -> plt.Figure:
    """lambda_1 vs epoch per model, one colour per configuration: Lanczos (solid) and the source's power-iteration
    estimate (dashed), each the mean over the seeds that did not diverge with a band from the lowest to the highest
    seed; a large red X on the mean wherever some seed's relative residual is above its tolerance (not converged,
    whatever the source's stopping rule said); a run that diverged is not in the mean but drawn grey on its own,
    its legend entry saying why; log scale (symlog if one is negative). ``eigen``: model, label, run, seed, epoch,
    quantity (``eigenvalue`` / ``power_eigenvalue``), value, converged, tolerance, diverged (why, or empty)."""
    use_style()
    models = list(dict.fromkeys(eigen["model"]))
    colours = _palette(eigen["label"])
    seeds = _several_seeds(eigen)
    fig, axes = _panels(models)
    unconverged, entries = False, {}
    for ax, model in zip(axes[0], models):
        panel = eigen[eigen["model"] == model]
        for label, runs in panel.groupby("label", sort=False):
            drawn = [(label, colours[label], _kept(runs))] if len(_kept(runs)) else []
            drawn += [(_diverged_label(rows, seeds > 1), DIVERGED_COLOUR, rows) for _, rows in _diverged(runs)]
            for name, colour, rows in drawn:
                entries.setdefault(name, colour)
                for quantity, (_, style, marker) in METHODS.items():
                    unconverged |= _draw_estimate(ax, rows[rows["quantity"] == quantity], colour, style, marker)
        if (panel["value"] > 0).all():
            ax.set_yscale("log")
        else:
            ax.set_yscale("symlog", linthresh=SYMLOG_RANGE * panel["value"].abs().max())
        ax.set(title=model, xlabel="epoch", ylabel=r"dominant eigenvalue $\lambda_1$")
    handles = [Line2D([], [], color=colour, lw=2, label=name) for name, colour in entries.items()]
    handles += [
        Line2D([], [], color="0.3", ls=style, marker=marker, label=name) for name, style, marker in METHODS.values()
    ]
    if unconverged:
        handles.append(unconverged_handle(eigen))
    banded = _several_seeds(_kept(eigen))
    if banded > 1:
        handles.append(band_handle(banded))
    axes[0, -1].legend(handles=handles, loc="best", fontsize="small")
    return fig


def _schedule_steps(ax, run: pd.DataFrame, column: str, **line) -> None:
    """``column`` of one run held over each epoch e-1 .. e (a step line from epoch 0)."""
    trained = run[run["epoch"] > 0]
    ax.plot(np.r_[0, trained["epoch"]], np.r_[trained[column].iloc[0], trained[column]], drawstyle="steps-pre",
            **line)


def absa_schedule_figure(history: pd.DataFrame) -> plt.Figure:
    """Effective batch size and learning rate vs epoch (held over epoch e-1 .. e), a line per run (so per seed),
    and test accuracy vs epoch, the mean over the seeds that did not diverge with their band; per model, every
    run; a diverged run is grey (its accuracy dotted, not in the mean). ``history``: model, label, run, seed,
    epoch, batch_size, lr, test_acc, diverged."""
    use_style()
    models = list(dict.fromkeys(history["model"]))
    colours = _palette(history["label"])
    seeds = _several_seeds(history)
    thin = dict(lw=1.0, alpha=0.8) if seeds > 1 else dict(lw=1.8)
    fig, axes = _panels(models, rows=3, height=2.6)
    entries = {}
    for col, model in enumerate(models):
        panel = history[history["model"] == model]
        for label, runs in panel.groupby("label", sort=False):
            for key, run in runs.groupby("run", sort=False):
                run = run.sort_values("epoch")
                colour = DIVERGED_COLOUR if run["diverged"].iloc[0] else colours[label]
                for row, column in enumerate(("batch_size", "lr")):
                    _schedule_steps(axes[row, col], run, column, color=colour, **thin)
            kept = _kept(runs)
            if len(kept):
                entries.setdefault(label, dict(color=colours[label], marker="o", ms=3))
                plot_mean_band(axes[2, col], kept, "epoch", "test_acc", colours[label], marker="o", ms=3, lw=1.5)
            for _, rows in _diverged(runs):
                rows = rows.sort_values("epoch")
                entries.setdefault(_diverged_label(rows, seeds > 1), DIVERGED_STYLE)
                axes[2, col].plot(rows["epoch"], rows["test_acc"], **DIVERGED_STYLE)
        axes[0, col].set_yscale("log", base=2)
        axes[1, col].set_yscale("log")
        axes[0, col].set(title=model, ylabel="effective batch size")
        axes[1, col].set(ylabel="learning rate")
        axes[2, col].set(xlabel="epoch", ylabel="test accuracy")
    handles = [Line2D([], [], label=name, **style) for name, style in entries.items()]
    banded = _several_seeds(_kept(history))
    if banded > 1:
        handles.append(band_handle(banded))
    axes[0, -1].legend(handles=handles, loc="best", fontsize="small")
    return fig


def _estimate(row: pd.Series) -> str:
    """A stochastic estimate as text: value +- standard error over its probes, or, from one probe, no error."""
    probes = int(row["probes"])
    if probes < 2 or not np.isfinite(row["stderr"]):
        return f"{row['value']:.3g} ({probes} probe: no error estimate)"
    return f"{row['value']:.3g} $\\pm$ {row['stderr']:.2g} ({probes} probes)"


def _over_seeds(rows: pd.DataFrame) -> str:
    """Several seeds' estimates as text: their mean and range (each seed's error is in its table)."""
    values = rows["value"]
    return f"mean {values.mean():.3g} over {len(values)} seeds (range {values.min():.3g} to {values.max():.3g})"


def _trace_text(name: str, trace: pd.DataFrame) -> str:
    """The legend entry of one configuration's (or one diverged run's) densities: its trace estimates, one run's
    with their error, several seeds' as their mean and range."""
    text = name
    for quantity, title in (("trace", ": trace"), ("density_trace", "\ndensity's trace")):
        rows = trace[trace["quantity"] == quantity]
        if len(rows):
            text += f"{title} {_estimate(rows.iloc[0]) if len(rows) == 1 else _over_seeds(rows)}"
    return text


def esd_final_figure(density: pd.DataFrame, trace: pd.DataFrame) -> plt.Figure:
    """SLQ spectral density of the final Hessian per model on a log scale (as PyHessian plots it), a line per run
    (thin, one per seed, where there are several) in its configuration's colour; the legend gives the Hutchinson
    trace and the trace the density implies (n times its mean): one run's +- its standard error over its probes,
    several seeds' as their mean and range. A diverged run is grey, with its own entry, and not in the mean.
    ``density``: model, label, run, seed, eigenvalue, density, diverged; ``trace``: model, label, run, seed,
    quantity (``trace`` / ``density_trace``), value, stderr, probes, diverged."""
    use_style()
    models = list(dict.fromkeys(density["model"]))
    colours = _palette(density["label"])
    seeds = _several_seeds(density)
    thin = dict(lw=0.9, alpha=0.8) if seeds > 1 else dict(lw=1.2)
    fig, axes = _panels(models, height=4.2)
    for ax, model in zip(axes[0], models):
        for label, runs in density[density["model"] == model].groupby("label", sort=False):
            traces = trace[(trace["model"] == model) & (trace["label"] == label)]
            kept = _kept(runs)
            drawn = [(_trace_text(label, _kept(traces)), colours[label], kept)] if len(kept) else []
            drawn += [(_trace_text(_diverged_label(rows, seeds > 1), traces[traces["run"] == key]), DIVERGED_COLOUR,
                       rows) for key, rows in _diverged(runs)]
            for text, colour, rows in drawn:
                for i, (_, run) in enumerate(rows.groupby("run", sort=False)):
                    ax.semilogy(run["eigenvalue"], run["density"] + DENSITY_FLOOR, color=colour,
                                label=text if i == 0 else "_nolegend_", **thin)
        ax.set(title=f"{model}, final epoch", xlabel="eigenvalue", ylabel="density (log scale)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="x-small")
    return fig
