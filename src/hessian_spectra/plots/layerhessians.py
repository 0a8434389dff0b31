"""Figures of the LayerHessians study (seed 004): per-epoch layer vs full spectral densities, and how well
each layer's spectrum matches the full one along the depth of the network."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hessian_spectra.matching import FULL, SOURCE, SPECTRAL_W1, Spectrum

LOG_DECADES = 8  # log-y panels show the density down to 1e-8 of its peak
METRIC_TITLES = {
    SOURCE: "source metric: W1 of min-max scaled log-densities as samples",
    SPECTRAL_W1: "spectral-measure W1 (eigenvalues / spectral radius)",
}


def _density_panel(ax: plt.Axes, spectrum: Spectrum, color, title: str) -> None:
    peak = spectrum.density.max()
    floor = peak * 10.0**-LOG_DECADES
    ax.semilogy(spectrum.grid, np.maximum(spectrum.density, floor), color=color, linewidth=1.0)
    ax.set_ylim(floor, peak * 3)
    ax.set_title(title, fontsize="small")
    ax.tick_params(labelsize="x-small")


def epochwise_figure(spectra: Mapping[int, Mapping[str, Spectrum]], block: str, title: str) -> plt.Figure:
    """One row per epoch: the density of layer block ``block`` (left) and of the full Hessian (right), log y.

    ``spectra`` maps epoch -> block -> spectrum (``matching.load_spectra`` of each epoch's file)."""
    epochs = sorted(spectra)
    palette = sns.color_palette()
    fig, axes = plt.subplots(len(epochs), 2, figsize=(8, 1.3 * len(epochs) + 1.0), squeeze=False)
    for row, epoch in enumerate(epochs):
        _density_panel(axes[row, 0], spectra[epoch][block], palette[0], f"layer, epoch {epoch}")
        _density_panel(axes[row, 1], spectra[epoch][FULL], palette[4], f"full Hessian, epoch {epoch}")
        axes[row, 0].set_ylabel("density")
    for ax in axes[-1]:
        ax.set_xlabel("eigenvalue")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def match_distros_figure(profiles: pd.DataFrame, kind: str) -> plt.Figure:
    """Per layer, the layer-vs-full distance relative to the run's largest, against relative depth; one line per
    model+dataset, one panel per metric. ``kind="wasserstein"`` sums over the summed epochs, ``"peak"`` takes the
    peak epoch (named in the legend). ``profiles`` is ``matching.layer_profiles``'s table."""
    profile = profiles[profiles["kind"] == kind].copy()
    profile["run label"] = profile["model"] + "+" + profile["dataset"]
    if kind == "peak":
        profile["run label"] += " (epoch " + profile["peak_epoch"].astype(str) + ")"
    metrics = [metric for metric in (SOURCE, SPECTRAL_W1) if metric in set(profile["metric"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.0 * len(metrics), 4.5), squeeze=False)
    what = "summed over training" if kind == "wasserstein" else "at the peak epoch"
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(
            data=profile[profile["metric"] == metric],
            x="depth",
            y="relative",
            hue="run label",
            marker="o",
            ax=ax,
        )
        ax.set_title(METRIC_TITLES[metric], fontsize="medium")
        ax.set_xlabel("relative depth: (layer - 1) / (L - 1)")
        ax.set_ylabel("distance / its max over the layers")
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(0, 1.05)
        ax.legend(title="model+dataset", fontsize="small", title_fontsize="small")
    fig.suptitle(f"Layer-wise vs full Hessian spectrum: distance {what}")
    fig.tight_layout()
    return fig
