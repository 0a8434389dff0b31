"""The findings scorecard as a picture: one coloured cell per claim (rows, in the scorecard's order) and training
seed (columns), labelled with its verdict."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch

from hessian_spectra.plots.common import plt, save_figure, use_style
from hessian_spectra.report_pages import VERDICT_COLOURS

CLAIM_WIDTH = 70  # characters per line of a claim's label


def verdicts_figure(findings: pd.DataFrame, out: str | Path) -> None:
    """Draw the verdict grid of ``findings`` (the scorecard's columns) to ``out`` (PNG)."""
    use_style()
    seeds = sorted({int(seed) for seed in findings["seed"]})
    claims = findings.drop_duplicates(["study", "claim"])[["source", "study", "claim"]].reset_index(drop=True)
    verdict = {(row.study, row.claim, int(row.seed)): row.verdict for row in findings.itertuples()}
    labels = [textwrap.fill(f"{str(row.source).zfill(3)} {row.study}: {row.claim}", CLAIM_WIDTH)
              for row in claims.itertuples()]
    heights = [label.count("\n") + 1 for label in labels]
    fig, ax = plt.subplots(figsize=(4.5 + 1.2 * len(seeds), 0.9 + 0.28 * sum(heights) + 0.1 * len(labels)))
    ax.grid(False)
    top = 0.0
    for row, (claim, height) in enumerate(zip(claims.itertuples(), heights)):
        for column, seed in enumerate(seeds):
            found = verdict.get((claim.study, claim.claim, seed))
            colour = VERDICT_COLOURS.get(found, "white") if found is not None else "white"
            ax.add_patch(plt.Rectangle((column, top), 1, height, facecolor=colour, edgecolor="white", lw=2))
            text = "\u2014" if found is None else found
            ax.text(column + 0.5, top + height / 2, text, ha="center", va="center", fontsize=8,
                    color="black" if found is None or sum(to_rgb(colour)) > 1.5 else "white")
        top += height
    ax.set_xlim(0, len(seeds))
    ax.set_ylim(top, 0)
    ax.set_xticks([c + 0.5 for c in range(len(seeds))], [f"seed {seed}" for seed in seeds])
    ax.xaxis.tick_top()
    centres, start = [], 0.0
    for height in heights:
        centres.append(start + height / 2)
        start += height
    ax.set_yticks(centres, labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    handles = [Patch(facecolor=colour, label=name) for name, colour in VERDICT_COLOURS.items()]
    if len(verdict) < len(claims) * len(seeds):
        handles.append(Patch(facecolor="white", edgecolor="0.6", label="\u2014 no run of the study with this seed"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False, fontsize=8)
    ax.set_title("Findings: each claim's verdict per training seed", pad=24, fontsize=10)
    save_figure(fig, out)
