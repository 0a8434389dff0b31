"""Figures of study `hessianflow` (seed 002): dominant eigenvalue per epoch, ABSA's schedule, final spectral density.

Every function reads tidy tables with a ``model`` and a ``label`` column (one label per run, e.g. SGD / ABSA);
models are panels (columns) and labels keep one colour across all three figures.
"""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from hessian_spectra.plots.common import UNCONVERGED, unconverged_handle, use_style

METHODS = {"eigenvalue": ("Lanczos top-1", "-", "o"), "power_eigenvalue": ("power iteration (source)", "--", "^")}
DIVERGED_COLOUR = (0.6, 0.6, 0.6)  # a diverged run is drawn, but never in a result's colour
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


def dominant_eigenvalue_figure(eigen: pd.DataFrame) -> plt.Figure:
    """lambda_1 vs epoch per model, one colour per run: Lanczos (solid) and the source's power-iteration estimate
    (dashed); a large red X on every estimate whose relative residual is above its tolerance (not converged,
    whatever the source's stopping rule said); a run that diverged is drawn grey, its legend entry saying why; log
    scale (symlog if one is negative). ``eigen``: model, label, epoch, quantity (``eigenvalue`` /
    ``power_eigenvalue``), value, converged, tolerance, diverged (why, or empty)."""
    use_style()
    models = list(dict.fromkeys(eigen["model"]))
    colours = _palette(eigen["label"])
    fig, axes = _panels(models)
    unconverged = False
    for ax, model in zip(axes[0], models):
        panel = eigen[eigen["model"] == model]
        for label, run in panel.groupby("label", sort=False):
            if run["diverged"].iloc[0]:
                colours[label] = DIVERGED_COLOUR
            for quantity, (_, style, marker) in METHODS.items():
                rows = run[run["quantity"] == quantity].sort_values("epoch")
                ax.plot(rows["epoch"], rows["value"], style, color=colours[label], lw=1.5)
                ok = rows["converged"].eq(True)
                ax.scatter(rows["epoch"], rows["value"], marker=marker, color=colours[label], s=22, zorder=3)
                ax.scatter(rows["epoch"][~ok], rows["value"][~ok], **UNCONVERGED)
                unconverged |= bool((~ok).any())
        if (panel["value"] > 0).all():
            ax.set_yscale("log")
        else:
            ax.set_yscale("symlog", linthresh=SYMLOG_RANGE * panel["value"].abs().max())
        ax.set(title=model, xlabel="epoch", ylabel=r"dominant eigenvalue $\lambda_1$")
    why = eigen.drop_duplicates("label").set_index("label")["diverged"]
    handles = [
        Line2D([], [], color=colour, lw=2, label=f"{label} DIVERGED: {why[label]}" if why[label] else label)
        for label, colour in colours.items()
    ]
    handles += [
        Line2D([], [], color="0.3", ls=style, marker=marker, label=name) for name, style, marker in METHODS.values()
    ]
    if unconverged:
        handles.append(unconverged_handle(eigen))
    axes[0, -1].legend(handles=handles, loc="best", fontsize="small")
    return fig


def absa_schedule_figure(history: pd.DataFrame) -> plt.Figure:
    """Effective batch size, learning rate and test accuracy vs epoch, per model, for every run (batch size and
    rate hold over epoch e-1 .. e). ``history``: model, label, epoch, batch_size, lr, test_acc."""
    use_style()
    models = list(dict.fromkeys(history["model"]))
    colours = _palette(history["label"])
    fig, axes = _panels(models, rows=3, height=2.6)
    for col, model in enumerate(models):
        panel = history[history["model"] == model]
        for label, run in panel.groupby("label", sort=False):
            run = run.sort_values("epoch")
            trained = run[run["epoch"] > 0]
            steps = dict(color=colours[label], drawstyle="steps-pre", lw=1.8, label=label)
            epochs = np.r_[0, trained["epoch"]]
            axes[0, col].plot(epochs, np.r_[trained["batch_size"].iloc[0], trained["batch_size"]], **steps)
            axes[1, col].plot(epochs, np.r_[trained["lr"].iloc[0], trained["lr"]], **steps)
            axes[2, col].plot(run["epoch"], run["test_acc"], "o-", color=colours[label], ms=3, lw=1.5, label=label)
        axes[0, col].set_yscale("log", base=2)
        axes[1, col].set_yscale("log")
        axes[0, col].set(title=model, ylabel="effective batch size")
        axes[1, col].set(ylabel="learning rate")
        axes[2, col].set(xlabel="epoch", ylabel="test accuracy")
    axes[0, -1].legend(loc="best", fontsize="small")
    return fig


def _estimate(row: pd.Series) -> str:
    """A stochastic estimate as text: value +- standard error over its probes, or, from one probe, no error."""
    probes = int(row["probes"])
    if probes < 2 or not np.isfinite(row["stderr"]):
        return f"{row['value']:.3g} ({probes} probe: no error estimate)"
    return f"{row['value']:.3g} $\\pm$ {row['stderr']:.2g} ({probes} probes)"


def esd_final_figure(density: pd.DataFrame, trace: pd.DataFrame) -> plt.Figure:
    """SLQ spectral density of the final Hessian per model on a log scale (as PyHessian plots it), one colour
    per run; the legend gives the Hutchinson trace and the trace the density implies (n times its mean), each
    +- its standard error over its probes. ``density``: model, label, eigenvalue, density; ``trace``: model,
    label, quantity (``trace`` / ``density_trace``), value, stderr, probes."""
    use_style()
    models = list(dict.fromkeys(density["model"]))
    colours = _palette(density["label"])
    fig, axes = _panels(models, height=4.2)
    for ax, model in zip(axes[0], models):
        for label, run in density[density["model"] == model].groupby("label", sort=False):
            rows = trace[(trace["model"] == model) & (trace["label"] == label)].set_index("quantity")
            text = f"{label}: trace {_estimate(rows.loc['trace'])}"
            if "density_trace" in rows.index:
                text += f"\ndensity's trace {_estimate(rows.loc['density_trace'])}"
            ax.semilogy(run["eigenvalue"], run["density"] + DENSITY_FLOOR, color=colours[label], lw=1.2, label=text)
        ax.set(title=f"{model}, final epoch", xlabel="eigenvalue", ylabel="density (log scale)")
        ax.legend(loc="upper right", fontsize="x-small")
    return fig
