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
from matplotlib import ticker
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hessian_spectra.plots.common import (
    ACCURACY_BAND_ALPHA,
    ACCURACY_BAND_LABEL,
    DIVERGED_COLOUR,
    DIVERGED_STYLE,
    UNCONVERGED,
    accuracy_band,
    unconverged_handle,
    use_style,
)
from hessian_spectra.plots.seeds import band_handle, plot_mean_band

LANCZOS = r"Lanczos $\lambda_1$"
ABSA_LAMBDA = r"ABSA's schedule $\lambda_1$ (its own power iteration)"
POWER_GAP = "power iteration (source) vs Lanczos"
GAP_LINEAR_PERCENT = 1.0  # the gap axis is linear within +-1%
DIVERGED_LINE = {**DIVERGED_STYLE, "ms": 4, "lw": 1.2}
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


def _draw_lanczos(ax, rows: pd.DataFrame, colour) -> bool:
    """Lanczos' lambda_1 vs epoch: the mean over the rows' seeds with their band, a dot per epoch and a red X on the
    mean where any seed's estimate is not converged; whether there was one."""
    stats = plot_mean_band(ax, rows, "epoch", "value", colour, lw=1.6)
    ok = rows["converged"].eq(True).groupby(rows["epoch"]).all().to_numpy()
    ax.scatter(stats["epoch"], stats["mean"], marker="o", color=colour, s=22, zorder=3)
    ax.scatter(stats["epoch"][~ok], stats["mean"][~ok], **UNCONVERGED)
    return bool((~ok).any())


def power_gap(rows: pd.DataFrame) -> pd.DataFrame:
    """Per run (``seed``) and epoch, power iteration's relative difference from Lanczos, (power - Lanczos) /
    |Lanczos|, as ``value``; ``rows`` holds both quantities of one configuration's runs."""
    wide = rows.pivot_table(index=["run", "seed", "epoch"], columns="quantity", values="value").reset_index()
    gap = (wide["power_eigenvalue"] - wide["eigenvalue"]) / wide["eigenvalue"].abs()
    return wide[["run", "seed", "epoch"]].assign(value=gap)


def _schedule_lambda(history: pd.DataFrame) -> pd.DataFrame:
    """ABSA's own lambda_1 (``lambda``: power iteration on its eigenvalue batch after each epoch, the estimate
    its schedule decides on) of the rows that have one, as ``value`` by epoch."""
    if "lambda" not in history:
        return history.iloc[:0].assign(value=[])
    measured = history[history["lambda"].notna()]
    return measured.assign(value=measured["lambda"].astype(float))


def dominant_eigenvalue_figure(eigen: pd.DataFrame, history: pd.DataFrame) -> plt.Figure:
    """Per model (a column), top: lambda_1 vs epoch, one colour per configuration: Lanczos (solid) and, for ABSA,
    the lambda its schedule decided on (dotted, from the run's history: power iteration on its own training
    batch); each the mean over the seeds that did not diverge, with a band from the lowest to the highest seed; a
    red X where a Lanczos estimate is not converged; log scale (symlog if one is negative). Bottom: the source's
    power-iteration estimate as its gap to Lanczos on the same checkpoint and data, (power - Lanczos) / |Lanczos|
    in percent per epoch (dashed), on a symlog axis linear within +-1%. A diverged run is not in a mean: it is
    drawn grey on its own, its legend entry saying why. ``eigen``: model, label, run, seed, epoch, quantity
    (``eigenvalue`` / ``power_eigenvalue``), value, converged, tolerance, diverged; ``history``: model, label, run,
    seed, epoch, diverged and, for ABSA runs, ``lambda``."""
    use_style()
    models = list(dict.fromkeys(eigen["model"]))
    colours = _palette(eigen["label"])
    seeds = _several_seeds(eigen)
    fig, axes = plt.subplots(2, len(models), figsize=(6.0 * len(models), 6.4), squeeze=False, sharex="col",
                             layout="constrained", gridspec_kw={"height_ratios": [2.0, 1.0]})
    unconverged, entries, absa = False, {}, False
    for col, model in enumerate(models):
        top, bottom = axes[0, col], axes[1, col]
        panel = eigen[eigen["model"] == model]
        schedules = history[history["model"] == model]
        values = []
        for label, runs in panel.groupby("label", sort=False):
            drawn = [(label, colours[label], _kept(runs), None)] if len(_kept(runs)) else []
            drawn += [(_diverged_label(rows, seeds > 1), DIVERGED_COLOUR, rows, key) for key, rows in _diverged(runs)]
            for name, colour, rows, diverged_run in drawn:
                entries.setdefault(name, colour)
                lanczos = rows[rows["quantity"] == "eigenvalue"]
                unconverged |= _draw_lanczos(top, lanczos, colour)
                values.append(lanczos["value"])
                plot_mean_band(bottom, power_gap(rows).assign(value=lambda gap: 100 * gap["value"]), "epoch",
                               "value", colour, ls="--", marker="^", ms=4, lw=1.2)
                runs_history = schedules[schedules["label"] == label]
                runs_history = (_kept(runs_history) if diverged_run is None
                                else runs_history[runs_history["run"] == diverged_run])
                own = _schedule_lambda(runs_history)
                if len(own):
                    absa = True
                    plot_mean_band(top, own, "epoch", "value", colour, ls=":", marker="D", ms=4, lw=1.4)
                    values.append(own["value"])
        values = pd.concat(values)
        if (values > 0).all():
            top.set_yscale("log")
        else:
            top.set_yscale("symlog", linthresh=SYMLOG_RANGE * values.abs().max())
        top.set(title=model, ylabel=r"dominant eigenvalue $\lambda_1$")
        bottom.axhline(0.0, color="0.3", lw=0.8)
        bottom.set_yscale("symlog", linthresh=GAP_LINEAR_PERCENT)
        bottom.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}%"))
        bottom.set(xlabel="epoch", ylabel="power iteration's gap\n(power - Lanczos) / |Lanczos|")
    handles = [Line2D([], [], color=colour, lw=2, label=name) for name, colour in entries.items()]
    handles += [Line2D([], [], color="0.3", marker="o", label=LANCZOS),
                Line2D([], [], color="0.3", ls="--", marker="^", label=POWER_GAP)]
    if absa:
        handles.append(Line2D([], [], color="0.3", ls=":", marker="D", ms=4, label=ABSA_LAMBDA))
    if unconverged:
        handles.append(unconverged_handle(eigen[eigen["quantity"] == "eigenvalue"]))
    banded = _several_seeds(_kept(eigen))
    if banded > 1:
        handles.append(band_handle(banded))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize="small")
    return fig


def _schedule_steps(ax, run: pd.DataFrame, column: str, **line) -> None:
    """``column`` of one run held over each epoch e-1 .. e (a step line from epoch 0)."""
    trained = run[run["epoch"] > 0]
    ax.plot(np.r_[0, trained["epoch"]], np.r_[trained[column].iloc[0], trained[column]], drawstyle="steps-pre",
            **line)


def absa_schedule_figure(history: pd.DataFrame) -> plt.Figure:
    """Effective batch size and learning rate vs epoch (held over epoch e-1 .. e), a line per run (so per seed),
    and test accuracy vs epoch, the mean over the seeds that did not diverge with their band (with one seed, +-1
    binomial standard error); per model, every run; a diverged run is grey (its accuracy dotted, not in the mean).
    ``history``: model, label, run, seed, epoch, batch_size, lr, test_acc, test_size, diverged."""
    use_style()
    models = list(dict.fromkeys(history["model"]))
    colours = _palette(history["label"])
    seeds = _several_seeds(history)
    thin = dict(lw=1.0, alpha=0.8) if seeds > 1 else dict(lw=1.8)
    fig, axes = _panels(models, rows=3, height=2.6)
    entries, binomial = {}, False
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
            if kept["run"].nunique() == 1:  # one seed: the accuracy's own error (several: their range)
                kept = kept.sort_values("epoch")
                accuracy_band(axes[2, col], kept["epoch"], kept["test_acc"], kept["test_size"].iloc[0],
                              colours[label])
                binomial = True
            for _, rows in _diverged(runs):
                rows = rows.sort_values("epoch")
                entries.setdefault(_diverged_label(rows, seeds > 1), DIVERGED_LINE)
                axes[2, col].plot(rows["epoch"], rows["test_acc"], **DIVERGED_LINE)
        axes[0, col].set_yscale("log", base=2)
        axes[1, col].set_yscale("log")
        axes[0, col].set(title=model, ylabel="effective batch size")
        axes[1, col].set(ylabel="learning rate")
        axes[2, col].set(xlabel="epoch", ylabel="test accuracy")
    handles = [Line2D([], [], label=name, **style) for name, style in entries.items()]
    banded = _several_seeds(_kept(history))
    if banded > 1:
        handles.append(band_handle(banded))
    if binomial:
        handles.append(Patch(color="0.5", alpha=2 * ACCURACY_BAND_ALPHA, label=ACCURACY_BAND_LABEL))
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
