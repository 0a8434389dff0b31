"""Planning of study `layerhessians`: its runs grouped by figure, their spectrum files, its figure names and the
config checks that need the planned runs."""

from __future__ import annotations

from dataclasses import dataclass

from hessian_spectra import layout
from hessian_spectra.runs import ConfigError, block_count, dataset_key, model_key

MATCH_KINDS = ("wasserstein", "peak")  # the matching figures, `match_distros_{kind}.png`


@dataclass(frozen=True)
class LayerHessiansPlan:
    """The study's runs by figure name `{model}_{dataset}` (one per seed, config order), each run key's spectrum
    files of epochs 0..epochs, and the figure names by layer-block count (counts ascending)."""

    by_name: dict[str, list[dict]]
    spectrum_files: dict[str, list[str]]
    layer_counts: dict[int, list[str]]

    def figures(self) -> list[str]:
        """File names of every figure of the study: the matching figures, then each name's epochwise figures."""
        return [f"match_distros_{kind}.png" for kind in MATCH_KINDS] + [
            figure
            for count, names in self.layer_counts.items()
            for name in names
            for figure in epochwise_figures(name, count)
        ]


def epochwise_figures(name: str, count: int) -> list[str]:
    """File names of the epochwise figures of figure name ``name`` (or a pattern such as ``{name}``), one per layer
    block 1..``count``."""
    return [f"training_eigvals_epochwise_{name}_{layer}.png" for layer in range(1, count + 1)]


def plan(runs: list[dict], settings: dict) -> LayerHessiansPlan:
    """Group the study's planned ``runs`` by figure and check ``settings`` (the study's config after defaults)
    against them; raise ``ConfigError`` for runs one figure cannot hold or a peak epoch no run has."""
    by_name: dict[str, list[dict]] = {}
    by_label: dict[str, list[dict]] = {}
    for run in runs:
        seeds = by_name.setdefault(f"{model_key(run['model'])}_{dataset_key(run['dataset'])}", [])
        if seeds and layout.without_seed(seeds[0]["key"]) != layout.without_seed(run["key"]):
            raise ConfigError(
                f"studies.layerhessians: results/{seeds[0]['key']} and results/{run['key']} have the same model "
                "and dataset but differ in more than their seed, and this study's figures are named by model and "
                "dataset; keep one of them (run the other with its own config)"
            )
        seeds.append(run)
        by_label[f"{model_key(run['model'])}/{dataset_key(run['dataset'])}"] = seeds
    if runs:
        _check_peak_epochs(settings["matching"]["peak_epoch"], by_label)
    layer_counts: dict[int, list[str]] = {}
    for name, seeds in by_name.items():
        layer_counts.setdefault(block_count(seeds[0]), []).append(name)
    return LayerHessiansPlan(
        by_name=by_name,
        spectrum_files={
            run["key"]: [layout.layer_spectrum(run["key"], epoch, "npz") for epoch in range(run["epochs"] + 1)]
            for run in runs
        },
        layer_counts=dict(sorted(layer_counts.items())),
    )


def _check_peak_epochs(peak_epoch: dict[str, int], by_label: dict[str, list[dict]]) -> None:
    """Each peak-epoch override names a run as `<model>/<dataset>` and one of its epochs."""
    for label, epoch in peak_epoch.items():
        seeds = by_label.get(label)
        if seeds is None:
            raise ConfigError(
                f"studies.layerhessians.matching.peak_epoch.{label}: no such run (runs: {', '.join(by_label)})"
            )
        if epoch > seeds[0]["epochs"]:
            raise ConfigError(
                f"studies.layerhessians.matching.peak_epoch.{label}: epoch {epoch} is past the run's last epoch "
                f"{seeds[0]['epochs']}"
            )
