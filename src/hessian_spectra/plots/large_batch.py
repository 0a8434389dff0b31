"""Figures of study `large_batch` (seed 000): top-k Hessian eigenvalues per batch size (mean over seeds with
their range), and loss surfaces (a row per run, so per seed).

``spectral_figure`` reads a tidy table (hessian, batch_size, run, seed, index, value, converged);
``surface_figure`` one with (label, direction, space, i, j, c1, c2, loss, lambda1, lambda2), as the ``landscape``
command writes it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.lines import Line2D

from hessian_spectra.layout import without_seed
from hessian_spectra.plots.common import DIVERGED_STYLE, UNCONVERGED, unconverged_handle, use_style
from hessian_spectra.plots.seeds import band_handle, plot_mean_band, seed_stats

HESSIAN_TITLES = {"last_layer": "last-layer Hessian (exact, dense eigh)", "full": "full Hessian (Lanczos)"}
DIRECTION_TITLES = {"eigen": "top-2 Hessian eigenvectors", "random": "filter-normalised random directions"}


def symlog_threshold(values: np.ndarray) -> float:
    """The linear range of a symlog axis: the power of ten at or below the smallest nonzero |value|, so that every
    nonzero value lies on the logarithmic part (at most 8 decades below the largest)."""
    magnitudes = np.abs(values[np.isfinite(values) & (values != 0)])
    if magnitudes.size == 0:
        return 1.0
    smallest = max(magnitudes.min(), magnitudes.max() * 1e-8)
    return 10.0 ** math.floor(math.log10(smallest))


def _draw_spectrum(ax: plt.Axes, rows: pd.DataFrame, colour) -> pd.DataFrame:
    """One configuration's eigenvalues vs index: the mean over its seeds (dots) with the seeds' band, and a red X
    on every index where any seed's eigenvalue is not converged; returns the drawn statistics."""
    stats = plot_mean_band(ax, rows, "index", "value", colour, ls="-", lw=1.5)
    ok = rows["converged"].eq(True).groupby(rows["index"]).all().to_numpy()
    ax.scatter(stats["index"][ok], stats["mean"][ok], color=colour, s=18, zorder=3)
    ax.scatter(stats["index"][~ok], stats["mean"][~ok], **UNCONVERGED)
    return stats


def spectral_figure(table: pd.DataFrame, hessians: list[str]) -> plt.Figure:
    """Eigenvalue vs index (1..k), one line per configuration coloured by batch size: the mean over seeds with a
    band from the lowest to the highest seed (where there are several), one panel per Hessian in ``hessians``; a
    symlog y axis keeps eigenvalues <= 0 visible (below the linear band around 0) and a red X marks every index
    where some seed's eigenvalue has a relative residual above its tolerance (not converged); a diverged run is
    left out of the mean and drawn apart, grey and dotted."""
    use_style()
    sizes = sorted(table["batch_size"].unique())
    colours = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    table = table.assign(configuration=table["run"].map(without_seed))
    fig, axes = plt.subplots(1, len(hessians), figsize=(5.2 * len(hessians), 4.0), squeeze=False, layout="constrained")
    for ax, hessian in zip(axes[0], hessians):
        panel = table[table["hessian"] == hessian]
        trained = panel[~panel["diverged"]]
        drawn = [_draw_spectrum(ax, rows, colours[size])
                 for (size, _), rows in trained.groupby(["batch_size", "configuration"], sort=True)]
        for _, rows in panel[panel["diverged"]].groupby("run", sort=True):
            ax.plot(rows["index"], rows["value"], **DIVERGED_STYLE)
            drawn.append(seed_stats(rows, "index", "value"))
        values = np.concatenate([stats[["mean", "low", "high"]].to_numpy().ravel() for stats in drawn] or [[]])
        threshold = symlog_threshold(values)
        ax.set_yscale("symlog", linthresh=threshold)
        ax.axhspan(-threshold, threshold, color="0.9", zorder=0)
        top_k = int(panel["index"].max()) if len(panel) else 1
        ax.set_xticks(range(1, top_k + 1, max(1, top_k // 10)))
        block = ", ".join(sorted(panel["block"].unique()))
        ax.set(title=f"{HESSIAN_TITLES[hessian]}\n{block}", xlabel="eigenvalue index", ylabel="eigenvalue")
    handles = [
        Line2D([], [], color=colour, marker="o", lw=1.5, label=f"batch size {size}") for size, colour in colours.items()
    ]
    for _, run in table[table["diverged"]].drop_duplicates("run").iterrows():
        handles.append(Line2D([], [], **DIVERGED_STYLE,
                              label=f"batch size {run['batch_size']}, seed {run['seed']} DIVERGED: "
                                    f"{run['diverged_because']} (not in the mean)"))
    trained = table[~table["diverged"]]
    seeds = int(trained.groupby("configuration")["seed"].nunique().max()) if len(trained) else 0
    if seeds > 1:
        handles.append(band_handle(seeds))
    if not table["converged"].eq(True).all():
        handles.append(unconverged_handle(table))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(4, len(handles)), fontsize="small")
    return fig


THETA_MARK = dict(marker="P", s=90, color="white", edgecolors="black", linewidths=1.0, zorder=6)
MINIMUM_MARK = dict(marker="*", s=150, color="crimson", edgecolors="black", linewidths=0.6, zorder=6)


def _legend_style(style: dict) -> dict:
    """A scatter style as Line2D keywords, for a legend entry."""
    return dict(marker=style["marker"], markersize=math.sqrt(style["s"]), markerfacecolor=style["color"],
                markeredgecolor=style["edgecolors"])


def _surface_title(rows: pd.DataFrame, direction: str) -> str:
    space = rows["space"].iloc[0]
    title = f"{DIRECTION_TITLES[direction]}\nover {space}"
    if direction == "eigen":
        title += rf" ($\lambda_1$={rows['lambda1'].iloc[0]:.3g}, $\lambda_2$={rows['lambda2'].iloc[0]:.3g})"
    return title


def surface_figure(table: pd.DataFrame, kind: str) -> plt.Figure:
    """Training loss over (c1, c2): one row per run (label), one column per direction kind; ``kind`` is
    ``surface`` (3-D) or ``contour`` (filled contours). Each panel has its own loss range and colour bar (a range
    shared across panels flattens every bowl but the deepest); theta (the centre) and the grid's minimum are
    marked, and the title gives the loss at theta and the grid's lowest and highest loss."""
    if kind not in ("surface", "contour"):
        raise ValueError(f"kind must be surface or contour, got {kind!r}")
    use_style()
    labels = list(dict.fromkeys(table["label"]))
    directions = [d for d in DIRECTION_TITLES if d in set(table["direction"])]
    fig = plt.figure(figsize=(5.6 * len(directions), 4.6 * len(labels)), layout="constrained")
    for r, label in enumerate(labels):
        for c, direction in enumerate(directions):
            rows = table[(table["label"] == label) & (table["direction"] == direction)]
            loss = rows.pivot(index="i", columns="j", values="loss").to_numpy()
            c1 = rows.pivot(index="i", columns="j", values="c1").to_numpy()
            c2 = rows.pivot(index="i", columns="j", values="c2").to_numpy()
            low, high = panel_range(loss)
            centre = rows[np.isclose(rows["c1"], 0.0, atol=1e-12) & np.isclose(rows["c2"], 0.0, atol=1e-12)]
            best = rows.loc[rows["loss"].idxmin()]
            marks = [(0.0, 0.0, float(centre["loss"].iloc[0]) if len(centre) else math.nan, THETA_MARK),
                     (best["c1"], best["c2"], best["loss"], MINIMUM_MARK)]
            position = r * len(directions) + c + 1
            if kind == "surface":
                ax = fig.add_subplot(
                    len(labels), len(directions), position, projection="3d", computed_zorder=False
                )
                drawn = ax.plot_surface(c1, c2, loss, cmap="viridis", vmin=low, vmax=high, linewidth=0,
                                        antialiased=True, alpha=0.85)
                ax.set_zlim(low, high)
                ax.zaxis.set_major_formatter(ticker.FormatStrFormatter("%.3g"))
                for x, y, z, style in marks:
                    ax.scatter([x], [y], [z], **style, depthshade=False)
            else:
                ax = fig.add_subplot(len(labels), len(directions), position)
                drawn = ax.contourf(c1, c2, loss, levels=np.linspace(low, high, 21), cmap="viridis")
                for x, y, _, style in marks:
                    ax.scatter([x], [y], **style)
            bar = fig.colorbar(drawn, ax=ax, shrink=0.7, pad=0.1 if kind == "surface" else 0.02)
            bar.set_label("training loss")
            bar.formatter = ticker.FormatStrFormatter("%.3g")
            ax.set(xlabel="$c_1$", ylabel="$c_2$")
            where = (f"loss {marks[0][2]:.3g} at θ, min {best['loss']:.3g} at ({best['c1']:.2g}, {best['c2']:.2g}), "
                     f"max {rows['loss'].max():.3g}")
            ax.set_title(f"{label}: {_surface_title(rows, direction)}\n{where}", fontsize="small")
    handles = [Line2D([], [], ls="", **_legend_style(THETA_MARK), label="θ (the checkpoint)"),
               Line2D([], [], ls="", **_legend_style(MINIMUM_MARK), label="the grid's lowest loss")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize="small")
    return fig


def panel_range(loss: np.ndarray) -> tuple[float, float]:
    """The colour (and z) range of one surface panel: its lowest and highest loss, widened where it is flat."""
    low, high = float(np.nanmin(loss)), float(np.nanmax(loss))
    if high - low <= 1e-12 * max(abs(high), 1.0):
        pad = 1e-6 * max(abs(high), 1.0)
        return low - pad, high + pad
    return low, high
