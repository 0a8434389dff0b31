"""Figures of study ``init_chain_rule`` (seed 003), drawn from its table (``studies.init_chain_rule.table``).

``init_sd_figure``: loss and ||H||_F of the tracked block against step for one init sd (the source's twin-axes
plot, one line per activation on each axis). ``all_sds_figure``: every init sd on shared log axes (loss and
||H||_F), the comparison across scales. ``chain_rule_terms_figure``: ||G||_F, ||H - G||_F and their ratio
against step, per init sd, for the tracked block and the full Hessian.

Runs that differ only by their training seed are one configuration, drawn as one line: the mean over its seeds,
with a band from the lowest to the highest seed; with one seed the band is the estimate's standard error.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hessian_spectra.layout import without_seed
from hessian_spectra.plots.seeds import BAND_ALPHA, band_handle, seed_stats
from hessian_spectra.tables import FULL

NORM = r"\|{}\|_F"
ALL_SDS_FIGURE = "init_sd_all.png"  # every init sd on shared axes (the per-sd figures are init_sd_{sd}.png)
STDERR_ALPHA = 0.15
EQUAL_TERMS = dict(color="0.25", linestyle="-.", linewidth=1.0)  # the ratio = 1 line


def sd_label(sd: float) -> str:
    """How an init sd appears in file names and titles (``1e-05``, ``0.01``, ``1``)."""
    return f"{sd:g}"


def tracked_block(table: pd.DataFrame) -> str:
    """The one block besides the full Hessian that the tables track."""
    blocks = sorted(set(table["block"]) - {FULL})
    if len(blocks) != 1:
        raise ValueError(f"expected one tracked block besides {FULL!r}, found {blocks}")
    return blocks[0]


def configurations(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (its runs differ only by seed), by sd and activation: ``config`` (the run key
    without its seed), ``sd``, ``activation``, ``seeds`` and ``label``, the activation plus the configuration
    where several share an sd and activation."""
    runs = table.drop_duplicates("run").assign(config=lambda runs: runs["run"].map(without_seed))
    configs = (
        runs.groupby("config", as_index=False)
        .agg(sd=("sd", "first"), activation=("activation", "first"), seeds=("run", "size"))
        .sort_values(["sd", "activation", "config"], ignore_index=True)
    )
    shared = configs.duplicated(["sd", "activation"], keep=False)
    configs["label"] = [
        f"{row.activation} ({row.config})" if several else str(row.activation)
        for row, several in zip(configs.itertuples(), shared)
    ]
    return configs


def _colors(labels: Sequence[str]) -> dict[str, tuple]:
    palette = sns.color_palette("colorblind", n_colors=max(len(labels), 1))
    return {label: palette[i] for i, label in enumerate(sorted(labels))}


def _with_configs(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(config=table["run"].map(without_seed))


def _series(table: pd.DataFrame, config: str, block: str, quantity: str) -> pd.DataFrame:
    """Every seed's rows of one configuration, block and quantity (``table`` from ``_with_configs``)."""
    rows = table[(table["config"] == config) & (table["block"] == block) & (table["quantity"] == quantity)]
    return rows.sort_values(["step", "seed"])


def _curve(ax: plt.Axes, rows: pd.DataFrame, color, stderr: bool = True, **line) -> pd.DataFrame:
    """The mean over seeds of ``rows``' values against step (left out where not positive, which a log axis
    cannot draw), with a band: the seeds' range with several seeds, else one standard error of the one seed's
    estimate (``stderr``); returns the statistics drawn."""
    stats = seed_stats(rows, "step", "value")
    ax.plot(stats["step"], stats["mean"].where(stats["mean"] > 0), color=color, **line)
    if stats["seeds"].max() > 1:
        ax.fill_between(stats["step"], stats["low"], stats["high"], color=color, alpha=BAND_ALPHA, linewidth=0)
    elif stderr:
        low, high = rows["value"] - rows["stderr"], rows["value"] + rows["stderr"]
        ax.fill_between(rows["step"], low, high, color=color, alpha=STDERR_ALPHA, linewidth=0)
    return stats


def _band_handles(configs: pd.DataFrame) -> list[Patch]:
    """The legend entry of the bands: the seeds' range, or one standard error where every configuration has one
    seed."""
    seeds = int(configs["seeds"].max())
    if seeds > 1:
        return [band_handle(seeds)]
    return [Patch(color="0.3", alpha=STDERR_ALPHA, label="$\\pm$ 1 standard error")]


def _spans_decades(values: np.ndarray) -> bool:
    positive = values[values > 0]
    return len(positive) > 0 and positive.max() > 30 * positive.min()


def init_sd_figure(table: pd.DataFrame, sd: float) -> plt.Figure:
    """Twin axes: loss on the Hessian subset (left, solid) and ||H||_F of the tracked block (right, dashed) against
    training step, one colour per activation; each line the mean over seeds, with ``_curve``'s band."""
    block = tracked_block(table)
    table = _with_configs(table)
    configs = configurations(table)
    colors = _colors(list(set(configs["label"])))
    fig, ax_loss = plt.subplots(figsize=(7.5, 4.5))
    ax_h = ax_loss.twinx()
    ax_h.grid(False)
    norms = []
    for config in configs[configs["sd"] == sd].itertuples():
        color = colors[config.label]
        loss = _series(table, config.config, FULL, "loss")
        _curve(ax_loss, loss, color, stderr=False, marker="o", markersize=3, label=f"loss, {config.label}")
        norm = _series(table, config.config, block, "frobenius_H")
        stats = _curve(ax_h, norm, color, linestyle="--", marker="s", markersize=3,
                       label=f"${NORM.format('H')}$ {block}, {config.label}")
        norms.append(stats[["mean", "low", "high"]].to_numpy().ravel())
    if norms and _spans_decades(np.concatenate(norms)):
        ax_h.set_yscale("log")
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("loss on the Hessian subset (solid)")
    ax_h.set_ylabel(f"${NORM.format('H')}$ of the {block} block (dashed)")
    ax_loss.set_title(f"init sd of {block} = {sd_label(sd)}")
    handles = ax_loss.get_legend_handles_labels()[0] + ax_h.get_legend_handles_labels()[0] + _band_handles(configs)
    ax_loss.legend(handles=handles, loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def all_sds_figure(table: pd.DataFrame) -> plt.Figure:
    """Every init sd on shared log axes, the comparison the study exists for: loss on the Hessian subset (left) and
    ||H||_F of the tracked block (right) against step, each the mean over seeds with ``_curve``'s band; colour =
    init sd, line style = activation; the legend sits outside the axes so it covers no curve."""
    block = tracked_block(table)
    table = _with_configs(table)
    configs = configurations(table)
    sds = sorted(configs["sd"].unique())
    palette = dict(zip(sds, sns.color_palette("viridis", len(sds))))
    styles = dict(zip(sorted(configs["activation"].astype(str).unique()), ("-", "--", ":", "-.")))
    fig, (ax_loss, ax_h) = plt.subplots(1, 2, figsize=(11.5, 4.3), sharex=True, layout="constrained")
    for config in configs.itertuples():
        color, style = palette[config.sd], styles[str(config.activation)]
        loss = _series(table, config.config, FULL, "loss")
        _curve(ax_loss, loss, color, stderr=False, linestyle=style, marker="o", markersize=3)
        norm = _series(table, config.config, block, "frobenius_H")
        _curve(ax_h, norm, color, linestyle=style, marker="s", markersize=3)
    for ax in (ax_loss, ax_h):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
        ax.set_xlabel("training step")
    ax_loss.set(ylabel="loss on the Hessian subset", title="loss, every init sd")
    norm = NORM.format("H")
    ax_h.set(ylabel=f"${norm}$ of the {block} block", title=f"${norm}$ of {block}, every init sd")
    handles = [Line2D([], [], color=palette[sd], lw=2, label=f"init sd {sd_label(sd)}") for sd in sds]
    handles += [Line2D([], [], color="0.3", linestyle=style, label=name) for name, style in styles.items()]
    handles += _band_handles(configs)
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    return fig


def _zero_note(ax: plt.Axes, what: str, names: list[str]) -> None:
    """Name the lines that are exactly zero, which a log axis cannot draw."""
    if names:
        ax.text(
            0.02,
            0.03,
            f"{what} = 0 exactly (not drawn): {', '.join(names)}",
            transform=ax.transAxes,
            fontsize="x-small",
            va="bottom",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )


def ratio_rows(ggn: pd.DataFrame, term: pd.DataFrame) -> pd.DataFrame:
    """Every seed's ||H - G||_F / ||G||_F against step (rows of ``_series``, matched on seed and step), with its
    standard error from the two estimates' (independent probes): sqrt(s_C^2 + r^2 s_G^2) / ||G||_F, which stays
    finite where ||H - G||_F is exactly zero."""
    both = ggn.merge(term, on=["seed", "step"], suffixes=("_G", "_HG"))
    ratio = both["value_HG"] / both["value_G"]
    stderr = np.hypot(both["stderr_HG"], ratio * both["stderr_G"]) / both["value_G"]
    return both.assign(value=ratio, stderr=stderr)[["seed", "step", "value", "stderr"]]


def chain_rule_terms_figure(table: pd.DataFrame) -> plt.Figure:
    """Columns: init sd. Rows: ||G||_F (solid) and ||H - G||_F (dashed) of the tracked block, the same for the full
    Hessian, and the ratio ||H - G||_F / ||G||_F (solid: tracked block, dotted: full) with a line at ratio = 1. One
    colour per activation; each line the mean over seeds with ``_curve``'s band (the ratio's standard error from
    the two estimates' with one seed)."""
    block = tracked_block(table)
    table = _with_configs(table)
    configs = configurations(table)
    colors = _colors(list(set(configs["label"])))
    sds = sorted(configs["sd"].unique())
    fig, axes = plt.subplots(3, len(sds), figsize=(4.3 * len(sds), 10), sharex=True, squeeze=False)
    for col, sd in enumerate(sds):
        ratio_ax, ratio_zero = axes[2, col], []
        for row, which in enumerate((block, FULL)):
            ax, zero = axes[row, col], []
            for config in configs[configs["sd"] == sd].itertuples():
                color = colors[config.label]
                ggn = _series(table, config.config, which, "frobenius_G")
                term = _series(table, config.config, which, "frobenius_H_minus_G")
                for rows, style in ((ggn, "-"), (term, "--")):
                    _curve(ax, rows, color, linestyle=style)
                if not (term["value"] > 0).any():
                    zero.append(config.label)
                ratio = ratio_rows(ggn, term)
                _curve(ratio_ax, ratio, color, linestyle="-" if row == 0 else ":")
                if not (ratio["value"] > 0).any():
                    ratio_zero.append(f"{config.label} ({which})")
            ax.set_yscale("log")
            _zero_note(ax, f"${NORM.format('H-G')}$", zero)
            ax.set_title(f"sd = {sd_label(sd)}: {'full Hessian' if which == FULL else block + ' block'}")
            if col == 0:
                ax.set_ylabel("Frobenius norm")
        ratio_ax.axhline(1.0, **EQUAL_TERMS)
        ratio_ax.set_yscale("log")
        _zero_note(ratio_ax, "ratio", ratio_zero)
        ratio_ax.set_title(f"sd = {sd_label(sd)}: ratio")
        ratio_ax.set_xlabel("training step")
        if col == 0:
            ratio_ax.set_ylabel(f"${NORM.format('H-G')} / {NORM.format('G')}$")
    handles = [Line2D([], [], color=colors[label], label=label) for label in sorted(colors)]
    handles += [
        Line2D([], [], color="black", linestyle="-", label=f"${NORM.format('G')}$ (Gauss-Newton) / ratio of {block}"),
        Line2D([], [], color="black", linestyle="--", label=f"${NORM.format('H-G')}$ (curvature term)"),
        Line2D([], [], color="black", linestyle=":", label="ratio of the full Hessian"),
        Line2D([], [], **EQUAL_TERMS, label="ratio = 1: both terms equal (below it G dominates)"),
        *_band_handles(configs),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
