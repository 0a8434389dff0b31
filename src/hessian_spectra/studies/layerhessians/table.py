"""The table of study ``layerhessians`` (seed 004): the layer-vs-full distances (``matching``) of every run's
layer spectra, one per epoch, with each run's peak epoch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hessian_spectra.matching import layer_blocks_of, layer_distances, load_spectra, peak_epochs

PEAK_MIN_SUM = "min_summed_distance"
PEAK_CONFIG = "config"
COLUMNS = (
    "run",
    "seed",
    "model",
    "dataset",
    "epoch",
    "layer",
    "num_layers",
    "block",
    "metric",
    "distance",
    "distance_stderr",
    "probes",
    "summed",
    "peak_epoch",
    "peak_rule",
)


@dataclass(frozen=True)
class RunSpectra:
    """One run's spectrum files: its key, training seed, model and dataset, and ``epoch -> npz path``."""

    key: str
    seed: int
    model: str
    dataset: str
    files: Mapping[int, str | Path]

    @property
    def label(self) -> str:
        """The name a peak-epoch override uses: ``<model>/<dataset>``, as they are named in paths."""
        from hessian_spectra.runs import dataset_key, model_key

        return f"{model_key(self.model)}/{dataset_key(self.dataset)}"


def build_table(
    runs: Iterable[RunSpectra],
    eps: float | None = None,
    first_epoch: int = 1,
    peak_overrides: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """The study's long table: one row per run x epoch x layer x metric, with each run's peak epoch.

    ``summed`` marks the epochs from ``first_epoch`` on: those summed over training and searched for the peak
    (the source's spectra start after the first epoch). ``peak_overrides`` maps ``<model>/<dataset>`` to a
    fixed peak epoch for every seed of that model and dataset (``peak_rule`` then reads ``config``).
    """
    runs = list(runs)
    overrides = dict(peak_overrides or {})
    labels = {run.label for run in runs}
    unknown = sorted(set(overrides) - labels)
    if unknown:
        raise ValueError(f"peak epoch given for {', '.join(unknown)}: no such run (runs: {', '.join(sorted(labels))})")
    rows = []
    for run in runs:
        blocks = None
        for epoch in sorted(run.files):
            spectra = load_spectra(run.files[epoch])
            if blocks is None:
                blocks = layer_blocks_of(spectra)
            elif layer_blocks_of(spectra) != blocks:
                raise ValueError(f"{run.files[epoch]}: its layer blocks differ from the run's other epochs")
            for row in layer_distances(spectra, eps):
                rows.append(
                    {
                        "run": run.key,
                        "seed": run.seed,
                        "model": run.model,
                        "dataset": run.dataset,
                        "epoch": epoch,
                        "num_layers": len(blocks),
                        "summed": epoch >= first_epoch,
                        **row,
                    }
                )
        if run.label in overrides:
            if overrides[run.label] not in run.files:
                raise ValueError(f"peak epoch {overrides[run.label]} of {run.key}: no spectrum of that epoch")
        elif max(run.files) < first_epoch:
            raise ValueError(f"{run.key}: no spectrum from epoch {first_epoch} on, where the peak is searched")
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("peak_epoch", "peak_rule")])
    table["peak_epoch"] = peak_epochs(table).reindex(pd.MultiIndex.from_frame(table[["run", "metric"]])).to_numpy()
    table["peak_rule"] = PEAK_MIN_SUM
    fixed = table["run"].map({run.key: overrides[run.label] for run in runs if run.label in overrides})
    chosen = fixed.notna()
    table.loc[chosen, "peak_epoch"] = fixed[chosen]
    table.loc[chosen, "peak_rule"] = PEAK_CONFIG
    table["peak_epoch"] = table["peak_epoch"].astype(int)
    return table[list(COLUMNS)]
