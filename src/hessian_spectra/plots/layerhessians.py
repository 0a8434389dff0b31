"""Figures of the LayerHessians study (seed 004): per-epoch layer vs full spectral densities, and how well
each layer's spectrum matches the full one along the depth of the network.

Runs that differ only by their training seed share one figure: the densities draw every seed, the distance
profiles the mean over seeds with a band from the lowest to the highest."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hessian_spectra.matching import FULL, SOURCE, SPECTRAL_W1, Spectrum
from hessian_spectra.layout import without_seed
from hessian_spectra.plots.seeds import band_handle, plot_mean_band

LOG_DECADES = 8  # log-y panels show the density down to 1e-8 of its peak
METRIC_TITLES = {
    SOURCE: "source metric: W1 of min-max scaled log-densities as samples",
    SPECTRAL_W1: "spectral-measure W1 (eigenvalues / spectral radius)",
}


def _density_panel(ax: plt.Axes, spectra: list[tuple[Spectrum, tuple, str | None]], title: str) -> None:
    """Log-y densities of one block at one epoch: ``(spectrum, colour, label)`` per seed, down to
    ``LOG_DECADES`` below the highest peak."""
    peak = max(spectrum.density.max() for spectrum, _, _ in spectra)
    floor = peak * 10.0**-LOG_DECADES
    for spectrum, color, label in spectra:
        ax.semilogy(spectrum.grid, np.maximum(spectrum.density, floor), color=color, linewidth=1.0, label=label)
    ax.set_ylim(floor, peak * 3)
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
    """One row per epoch: the density of layer block ``block`` (left) and of the full Hessian (right), log y;
    with several seeds one line per seed (a density of one checkpoint cannot be averaged), labelled.

    ``spectra`` maps seed -> epoch -> block -> spectrum (``matching.load_spectra`` of each epoch's file)."""
    seeds = sorted(spectra)
    epochs = _epochs(spectra)
    palette = sns.color_palette()
    several = len(seeds) > 1
    colors = {seed: (palette[i % len(palette)],) * 2 if several else (palette[0], palette[4])
              for i, seed in enumerate(seeds)}
    labels = {seed: f"seed {seed}" if several else None for seed in seeds}
    height = 1.3 * len(epochs) + 1.0 + (0.4 if several else 0.0)
    fig, axes = plt.subplots(len(epochs), 2, figsize=(8, height), squeeze=False)
    for row, epoch in enumerate(epochs):
        for col, (which, name) in enumerate(((block, "layer"), (FULL, "full Hessian"))):
            drawn = [(spectra[seed][epoch][which], colors[seed][col], labels[seed]) for seed in seeds]
            _density_panel(axes[row, col], drawn, f"{name}, epoch {epoch}")
        axes[row, 0].set_ylabel("density")
    for ax in axes[-1]:
        ax.set_xlabel("eigenvalue")
    fig.suptitle(title)
    if several:
        handles = axes[0, 0].get_legend_handles_labels()[0]
        fig.legend(handles=handles, loc="lower center", ncol=len(seeds), fontsize="small", frameon=False)
        fig.tight_layout(rect=(0, 0.4 / height, 1, 1))
    else:
        fig.tight_layout()
    return fig


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
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.0 * len(metrics), 4.5), squeeze=False)
    what = "summed over training" if kind == "wasserstein" else "at the peak epoch"
    for ax, metric in zip(axes[0], metrics):
        rows = profile[profile["metric"] == metric]
        labels = _run_labels(rows, kind)
        for config, config_rows in rows.groupby("config"):
            plot_mean_band(ax, config_rows, "depth", "relative", colors[config], marker="o", label=labels[config])
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
