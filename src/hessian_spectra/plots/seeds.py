"""Runs repeated over seeds drawn as one curve: the mean across seeds with a band from the lowest to the highest
seed, so that a difference between curves can be read against seed-to-seed spread."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Patch

BAND_ALPHA = 0.2


def seed_stats(rows: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per ``x``: the mean, lowest and highest ``y`` over the rows (one per seed) and how many seeds there are."""
    return (
        rows.groupby(x, sort=True)[y]
        .agg(mean="mean", low="min", high="max", seeds="count")
        .reset_index()
    )


def plot_mean_band(ax: plt.Axes, rows: pd.DataFrame, x: str, y: str, color, **line) -> pd.DataFrame:
    """Draw ``y`` against ``x``: the mean over seeds as a line (``line`` keywords), and where there are several
    seeds the band between the lowest and highest; returns the statistics drawn."""
    stats = seed_stats(rows, x, y)
    ax.plot(stats[x], stats["mean"], color=color, **line)
    if stats["seeds"].max() > 1:
        ax.fill_between(stats[x], stats["low"], stats["high"], color=color, alpha=BAND_ALPHA, linewidth=0)
    return stats


def band_handle(seeds: int) -> Patch:
    """The legend entry of the bands: what they span."""
    return Patch(color="0.5", alpha=BAND_ALPHA * 2, label=f"range over {seeds} seeds (line: mean)")
