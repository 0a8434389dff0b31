"""The look every figure shares, how unconverged eigenvalues are marked, and an atomic save, so a killed plot job
never leaves a half-written PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from hessian_spectra.atomic import atomic_write  # noqa: E402

DPI = 150
# scatter style of an eigenvalue whose relative residual is above its tolerance: it must stand out on any line
UNCONVERGED = dict(marker="X", s=70, color="crimson", edgecolors="black", linewidths=0.6, zorder=5)
# colour and line style of a diverged run: drawn, but never in a result's colour
DIVERGED_COLOUR = (0.55, 0.55, 0.55)
DIVERGED_STYLE = dict(color=DIVERGED_COLOUR, linestyle=":", marker="x")


def unconverged_handle(table) -> Line2D:
    """The legend entry of ``UNCONVERGED`` markers, naming the tolerance of ``table``'s unconverged rows."""
    tolerance = table.loc[table["converged"].eq(False), "tolerance"].max()
    return Line2D(
        [], [], ls="", marker="X", markersize=9, markerfacecolor="crimson", markeredgecolor="black",
        label=f"not converged (relative residual > {tolerance:g})",
    )


ACCURACY_BAND_ALPHA = 0.15
ACCURACY_BAND_LABEL = "$\\pm$ 1 binomial standard error of the accuracy"


def binomial_stderr(accuracy, samples):
    """The standard error of an accuracy measured on ``samples`` examples: sqrt(p (1 - p) / n)."""
    return np.sqrt(accuracy * (1.0 - accuracy) / samples)


def accuracy_band(ax, epochs, accuracy, samples: int, colour) -> None:
    """Shade +-1 binomial standard error around one run's accuracy curve (``samples`` examples per value)."""
    spread = binomial_stderr(np.asarray(accuracy, dtype=float), samples)
    ax.fill_between(epochs, accuracy - spread, accuracy + spread, color=colour, alpha=ACCURACY_BAND_ALPHA,
                    linewidth=0)


def use_style() -> None:
    """Seaborn's ticks style with a colour-blind-safe palette and readable font sizes."""
    sns.set_theme(context="notebook", style="ticks", palette="colorblind", font_scale=1.0)
    plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3, "figure.dpi": DPI, "savefig.bbox": "tight"})


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    plt.close(fig)
