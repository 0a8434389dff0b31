"""Figures of the LayerHessians study (seed 004): per-epoch layer vs full spectral densities, and how well
each layer's spectrum matches the full one along the depth of the network.

Runs that differ only by their training seed share one figure: the densities draw every seed, the distance
profiles the mean over seeds with a band from the lowest to the highest."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from hessian_spectra.layout import without_seed
from hessian_spectra.matching import FULL, SOURCE, SPECTRAL_W1, Spectrum, spectral_scale
from hessian_spectra.plots.seeds import band_handle, plot_mean_band
from hessian_spectra.studies.layerhessians.table import PEAK_CONFIG

LOG_DECADES = 8  # log-y panels show the density down to 1e-8 of its peak
RUG = dict(linestyle="", marker="|", markersize=6, markeredgewidth=0.8, alpha=0.7)  # Ritz values
LAMBDA_1 = dict(linestyle="--", linewidth=0.8, alpha=0.8)
SMOOTHING = dict(capsize=3, linewidth=1.2, capthick=1.2)  # +-sigma of the Gaussian smoothing
ERROR_COLUMN = "distance_stderr"  # a distance's standard error, where the profiles carry one
NOTE_WIDTH = 70  # characters per line of the peak-epoch notes under the panels
METRIC_TITLES = {
    SOURCE: "source metric: W1 of min-max scaled log-densities as samples",
    SPECTRAL_W1: "spectral-measure W1 (eigenvalues / spectral radius)",
}


def _density_panel(ax: plt.Axes, spectra: list[tuple[Spectrum, tuple, str | None]], title: str) -> None:
    """Log-y densities of one block at one epoch against eigenvalue / spectral radius: ``(spectrum, colour,
    label)`` per seed, each on its own radius (the largest |Ritz value|), down to ``LOG_DECADES`` below the
    highest peak; per seed, its Ritz values as a rug at the bottom, lambda_1 (the largest) as a dashed line and the
    smoothing width +-sigma as a bar under the peak."""
    scaled = [(spectrum, spectral_scale(spectrum.nodes, spectrum.weights), color, label)
              for spectrum, color, label in spectra]
    peak = max(spectrum.density.max() * radius for spectrum, radius, _, _ in scaled)
    floor = peak * 10.0**-LOG_DECADES
    for spectrum, radius, color, label in scaled:
        ax.semilogy(spectrum.grid / radius, np.maximum(spectrum.density * radius, floor), color=color, linewidth=1.0,
                    label=label)
        nodes = spectrum.nodes[spectrum.weights > 0] / radius
        ax.plot(nodes, np.full(nodes.shape, floor), **RUG, color=color)
        ax.axvline(nodes.max(), color=color, **LAMBDA_1)
        if np.isfinite(spectrum.sigma):
            centre = spectrum.grid[np.argmax(spectrum.density)] / radius
            half = spectrum.sigma / radius
            ax.errorbar(centre, peak * 10.0**-2, xerr=half, fmt="none", color=color, **SMOOTHING)
    if len(scaled) == 1:
        spectrum, radius = scaled[0][:2]
        top = spectrum.nodes[spectrum.weights > 0].max()
        title += f": radius {radius:.3g}, $\\lambda_1$ {top:.3g}"
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(floor / 3, peak * 3)
    ax.set_title(title, fontsize="small")
    ax.tick_params(labelsize="x-small")


def _epochs(spectra: Mapping[int, Mapping[int, Mapping[str, Spectrum]]]) -> list[int]:
    """The epochs every seed has spectra of (they must be the same)."""
    epochs = {seed: sorted(by_epoch) for seed, by_epoch in spectra.items()}
    first = next(iter(epochs.values()))
    if any(found != first for found in epochs.values()):
        raise ValueError(f"the seeds have spectra of different epochs: {epochs}")
    return first


def epochwise_figure(
    spectra: Mapping[int, Mapping[int, Mapping[str, Spectrum]]], block: str, title: str
) -> plt.Figure:
    """One row per epoch: the density of layer block ``block`` (left) and of the full Hessian (right), log y,
    against eigenvalue / spectral radius (``_density_panel``); with several seeds one line per seed (a density of
    one checkpoint cannot be averaged), labelled.

    ``spectra`` maps seed -> epoch -> block -> spectrum (``matching.load_spectra`` of each epoch's file)."""
    seeds = sorted(spectra)
    epochs = _epochs(spectra)
    palette = sns.color_palette()
    several = len(seeds) > 1
    colors = {seed: (palette[i % len(palette)],) * 2 if several else (palette[0], palette[4])
              for i, seed in enumerate(seeds)}
    labels = {seed: f"seed {seed}" if several else None for seed in seeds}
    height = 1.5 * len(epochs) + 1.3 + (0.45 if several else 0.3)
    fig, axes = plt.subplots(len(epochs), 2, figsize=(9, height), squeeze=False, sharex=True)
    for row, epoch in enumerate(epochs):
        for col, (which, name) in enumerate(((block, "layer"), (FULL, "full Hessian"))):
            drawn = [(spectra[seed][epoch][which], colors[seed][col], labels[seed]) for seed in seeds]
            _density_panel(axes[row, col], drawn, f"{name}, epoch {epoch}")
        axes[row, 0].set_ylabel("density")
    for ax in axes[-1]:
        ax.set_xlabel("eigenvalue / spectral radius (largest |Ritz value|)")
    fig.suptitle(title)
    handles = axes[0, 0].get_legend_handles_labels()[0] if several else []
    grey = "0.3"
    handles += [
        Line2D([], [], **RUG, color=grey, label="Ritz values (SLQ nodes, every probe)"),
        Line2D([], [], **LAMBDA_1, color=grey, label=r"$\lambda_1$: the largest Ritz value"),
        Line2D([], [], color=grey, marker="|", markersize=8, linewidth=SMOOTHING["linewidth"],
               label=r"Gaussian smoothing, $\pm\sigma$"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, (0.45 if several else 0.3) / height, 1, 1))
    return fig


def _relative_error(rows: pd.DataFrame) -> pd.Series:
    """One run's ``ERROR_COLUMN`` on the figure's scale: divided by the distance the profile is relative to."""
    return rows[ERROR_COLUMN] * rows["relative"] / rows["distance"]


def _run_labels(profile: pd.DataFrame, kind: str) -> dict[str, str]:
    """Legend label of each configuration (``config``): model+dataset, plus the configuration where two share it;
    for the peak kind, the peak epoch (each seed's where they differ)."""
    configs = profile.drop_duplicates("config").sort_values("config")
    names = dict(zip(configs["config"], configs["model"] + "+" + configs["dataset"]))
    shared = configs.duplicated(["model", "dataset"], keep=False)
    labels = {row.config: f"{names[row.config]} ({row.config})" if several else names[row.config]
              for row, several in zip(configs.itertuples(), shared)}
    if kind != "peak":
        return labels
    for config, rows in profile.groupby("config"):
        peaks = rows.drop_duplicates("seed").sort_values("seed")
        if peaks["peak_epoch"].nunique() == 1:
            labels[config] += f" (epoch {peaks['peak_epoch'].iloc[0]})"
        else:
            epochs = ", ".join(f"{e} (seed {s})" for s, e in zip(peaks["seed"], peaks["peak_epoch"]))
            labels[config] += f" (epochs {epochs})"
    return labels


def peak_reason(rows: pd.DataFrame) -> str:
    """Why one run's peak epoch is the one drawn (``rows``: its profile rows of one metric): fixed in the config,
    or the searched epoch of smallest summed distance, which at the last epoch trained is no peak at all."""
    first = rows.iloc[0]
    epoch, low, high = int(first["peak_epoch"]), int(first["searched_from"]), int(first["searched_to"])
    if first["peak_rule"] == PEAK_CONFIG:
        return f"epoch {epoch}: fixed in the config (matching.peak_epoch)"
    reason = f"epoch {epoch}, the smallest distance summed over layers of epochs {low}-{high}"
    if epoch == high:
        reason += ": the last epoch trained, so no peak inside training (the distances may still be falling)"
    elif epoch == low:
        reason += ": the first epoch searched, so no peak inside the epochs searched (it may lie earlier)"
    return reason


def _peak_note(rows: pd.DataFrame, labels: dict[str, str]) -> str:
    """The peak epochs of one panel's configurations and why (each seed's where they differ)."""
    lines = []
    for config, config_rows in rows.groupby("config"):
        reasons = {seed: peak_reason(seed_rows) for seed, seed_rows in config_rows.groupby("seed")}
        name = labels[config].split(" (epoch")[0]
        if len(set(reasons.values())) == 1:
            lines.append(f"{name}: {next(iter(reasons.values()))}")
        else:
            lines += [f"{name}, seed {seed}: {reason}" for seed, reason in reasons.items()]
    return "\n".join(textwrap.fill(line, NOTE_WIDTH, subsequent_indent="    ") for line in lines)


def match_distros_figure(profiles: pd.DataFrame, kind: str) -> plt.Figure:
    """Per layer, the layer-vs-full distance relative to the run's largest, against relative depth; one line per
    model+dataset (the mean over its seeds, with the seeds' range as a band), one panel per metric.
    ``kind="wasserstein"`` sums over the summed epochs, ``"peak"`` takes each run's peak epoch (named in the
    legend). ``profiles`` is ``matching.layer_profiles``'s table."""
    profile = profiles[profiles["kind"] == kind].assign(config=lambda rows: rows["run"].map(without_seed))
    configs = sorted(profile["config"].unique())
    colors = dict(zip(configs, sns.color_palette(n_colors=len(configs))))
    seeds = int(profile.groupby("config")["seed"].nunique().max())
    metrics = [metric for metric in (SOURCE, SPECTRAL_W1) if metric in set(profile["metric"])]
    notes = kind == "peak"
    fig, axes = plt.subplots(2 if notes else 1, len(metrics), figsize=(6.0 * len(metrics), 6.0 if notes else 4.5),
                             squeeze=False, gridspec_kw={"height_ratios": [4.5, 1.5] if notes else [1]})
    what = "summed over training" if kind == "wasserstein" else "at the peak epoch"
    for col, (ax, metric) in enumerate(zip(axes[0], metrics)):
        rows = profile[profile["metric"] == metric]
        labels = _run_labels(rows, kind)
        for config, config_rows in rows.groupby("config"):
            stats = plot_mean_band(ax, config_rows, "depth", "relative", colors[config], marker="o",
                                   label=labels[config])
            known = config_rows[_relative_error(config_rows).notna()] if ERROR_COLUMN in config_rows else []
            if len(known) and stats["seeds"].max() == 1:
                ax.errorbar(known["depth"], known["relative"], yerr=_relative_error(known), color=colors[config],
                            linestyle="", capsize=3)
        if notes:
            axes[1, col].axis("off")
            axes[1, col].text(0.0, 1.0, _peak_note(rows, labels), transform=axes[1, col].transAxes, va="top",
                              ha="left", fontsize="x-small")
        ax.set_title(METRIC_TITLES[metric], fontsize="medium")
        ax.set_xlabel("relative depth: (layer - 1) / (L - 1)")
        ax.set_ylabel("distance / its max over the layers")
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(0, 1.05)
        handles = ax.get_legend_handles_labels()[0] + ([band_handle(seeds)] if seeds > 1 else [])
        ax.legend(handles=handles, title="model+dataset", fontsize="small", title_fontsize="small")
    fig.suptitle(f"Layer-wise vs full Hessian spectrum: distance {what}")
    fig.tight_layout()
    return fig
