"""Seed 004, LayerHessians: SLQ densities of the full Hessian and of every layer block after every epoch, the
distances between them, and the epoch at which layers and the full Hessian match best.

Figures are named by ``{model}_{dataset}`` and the 1-based layer-block index: runs of one model and dataset that
differ only by their seed share each figure.
"""

from __future__ import annotations

from collections.abc import Mapping

from hessian_spectra import layout
from hessian_spectra.studies.base import Study, spectrum_job
from hessian_spectra.studies.layerhessians import plan as planning
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


def match_settings(plan: planning.LayerHessiansPlan, settings: dict) -> dict:
    """``layerhessians match`` flags: the matching settings, peak-epoch overrides and every run with its spectra."""
    matching = settings["matching"]
    return {"first_epoch": matching["first_epoch"], "eps": matching["eps"],
            "peak_epoch": [[f"{label}={epoch}"] for label, epoch in matching["peak_epoch"].items()],
            "run": [[layout.run_files(key).run_json, *files] for key, files in plan.spectrum_files.items()]}


def epochwise_settings(plan: planning.LayerHessiansPlan, name: str) -> dict:
    """``layerhessians epochwise`` flags of one figure name: every seed's run with its spectra."""
    return {"run": [[layout.run_files(run["key"]).run_json, *plan.spectrum_files[run["key"]]]
                    for run in plan.by_name[name]]}


STUDY = Study(
    name="layerhessians",
    source="004",
    title="LayerHessians: layer-block and full Hessian spectra over training",
    claims=CLAIMS,
    jobs=(
        spectrum_job("spectrum", "epoch_checkpoint", lambda key, suffix: layout.layer_spectrum(key, "{epoch}", suffix),
                     spectrum_settings, log="layer_spectra/epoch_{epoch}",
                     group="spectra_{model}_{dataset}_bs{batch_size}_seed{seed}_{variant}"),
    ),
    table=TABLE,
    scorecard_tables=(layout.MATCH_PROFILES,),
    run_tables=lambda run: [layout.layer_spectrum(run["key"], epoch, "tsv") for epoch in range(run["epochs"] + 1)],
    figures=lambda runs, settings: planning.plan(runs, settings).figures(),
    plan=planning.plan,
    rules="rules/layerhessians.smk",
)
