"""The findings scorecard as a picture: one coloured cell per claim (rows, in the scorecard's order) and training
seed (columns), labelled with its verdict; a claim whose study has no run gets one cell across the seeds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch

from hessian_spectra.plots.common import plt, save_figure, use_style
from hessian_spectra.report_pages import VERDICT_COLOURS, seed_heading, verdict_grid

CLAIM_WIDTH = 70  # characters per line of a claim's label


def verdicts_figure(findings: pd.DataFrame, out: str | Path) -> None:
    """Draw the verdict grid of ``findings`` (the scorecard, text cells) to ``out`` (PNG)."""
    use_style()
    seeds, claims = verdict_grid(findings)
    columns = max(len(seeds), 1)
    labels = [textwrap.fill(f"{claim.source} {claim.study}: {claim.claim}", CLAIM_WIDTH) for claim in claims]
    heights = [label.count("\n") + 1 for label in labels]
    fig, ax = plt.subplots(figsize=(4.5 + 1.2 * columns, 0.9 + 0.28 * sum(heights) + 0.1 * len(labels)))
    ax.grid(False)
    top, centres, missing = 0.0, [], False
    for claim, height in zip(claims, heights):
        cells = ([(0, columns, claim.unseeded[0], f"{claim.unseeded[0]}: study not run")]
                 if claim.unseeded is not None else
                 [(column, 1, claim.seeds.get(seed), claim.seeds.get(seed, "\u2014")) for column, seed in enumerate(seeds)])
        for left, width, verdict, text in cells:
            colour = VERDICT_COLOURS.get(verdict, "white")
            missing |= verdict is None
            ax.add_patch(plt.Rectangle((left, top), width, height, facecolor=colour, edgecolor="white", lw=2))
            ax.text(left + width / 2, top + height / 2, text, ha="center", va="center", fontsize=8,
                    color="white" if verdict is not None and sum(to_rgb(colour)) < 1.5 else "black")
        centres.append(top + height / 2)
        top += height
    ax.set_xlim(0, columns)
    ax.set_ylim(top, 0)
    ax.set_xticks([c + 0.5 for c in range(len(seeds))], [seed_heading(seed) for seed in seeds])
    ax.xaxis.tick_top()
    ax.set_yticks(centres, labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    handles = [Patch(facecolor=colour, label=name) for name, colour in VERDICT_COLOURS.items()]
    if missing:
        handles.append(Patch(facecolor="white", edgecolor="0.6", label="\u2014 no run of the study with this seed"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False, fontsize=8)
    ax.set_title("Findings: each claim's verdict per training seed", pad=24, fontsize=10)
    save_figure(fig, out)
