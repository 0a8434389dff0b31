"""Seed 004, LayerHessians: SLQ densities of the full Hessian and of every layer block after every epoch, the
distances between them, and the epoch at which layers and the full Hessian match best.

Figures are named by ``{model}_{dataset}`` and the 1-based layer-block index: runs of one model and dataset that
differ only by their seed share each figure.
"""

from __future__ import annotations

from collections.abc import Mapping

from hessian_spectra import layout
from hessian_spectra.runs import block_count, dataset_key, model_key
from hessian_spectra.studies.base import RunJob, Study
from hessian_spectra.studies.layerhessians.claims import CLAIMS

TABLE = "matching.tsv"


def spectrum_settings(settings: dict, run: dict, wildcards: Mapping[str, str], input) -> dict:
    """``spectrum`` flags of one checkpoint's full and layer-block densities and top-k."""
    spectrum = settings["spectrum"]
    blocks = {"blocks": ",".join(run["layer_blocks"])} if "layer_blocks" in run else {}
    return {"density_steps": spectrum["lanczos_steps"], "density_probes": spectrum["probes"],
            "grid_points": spectrum["grid_points"], "sigma_rel": spectrum["sigma_rel"], "top_k": spectrum["top_k"],
            "tol": spectrum["tol"], "max_steps": spectrum["max_steps"], "batch_size": spectrum["batch_size"],
            "layers": True, **blocks, "seed": run["seed"]}


def figure_name(run: dict) -> str:
    """The ``{model}_{dataset}`` part of a run's figure names."""
    return f"{model_key(run['model'])}_{dataset_key(run['dataset'])}"


def figures(runs: list[dict], settings: dict) -> list[str]:
    """The two matching figures and, per model and dataset, one epochwise figure per layer block."""
    first: dict[str, dict] = {}
    for run in runs:
        first.setdefault(figure_name(run), run)
    return [f"match_distros_{kind}.png" for kind in ("wasserstein", "peak")] + [
        f"training_eigvals_epochwise_{name}_{layer}.png"
        for name, run in first.items() for layer in range(1, block_count(run) + 1)]


STUDY = Study(
    name="layerhessians",
    source="004",
    title="LayerHessians: layer-block and full Hessian spectra over training",
    claims=CLAIMS,
    jobs=(
        RunJob("spectrum", "spectrum", {"checkpoint": "epoch_checkpoint", "data": "subset"},
               {"out": lambda key: layout.layer_spectrum(key, "{epoch}", "tsv"),
                "npz": lambda key: layout.layer_spectrum(key, "{epoch}", "npz")},
               spectrum_settings, log="layer_spectra/epoch_{epoch}",
               group="spectra_{model}_{dataset}_bs{batch_size}_seed{seed}_{variant}"),
    ),
    table=TABLE,
    scorecard_tables=(layout.MATCH_PROFILES,),
    run_tables=lambda run: [layout.layer_spectrum(run["key"], epoch, "tsv") for epoch in range(run["epochs"] + 1)],
    figures=figures,
    rules="rules/layerhessians.smk",
)
