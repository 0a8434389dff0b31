"""Seed 000, large-batch training: top-k spectra of the last-layer and full Hessians at the final checkpoint, and
loss surfaces along the top-2 eigenvectors and filter-normalised random directions.

The last-layer spectrum is an exact dense eigh, the full one Lanczos top-k; eigenvectors are kept for the Hessian
whose top-2 the landscape follows (``landscape.hessian``). Random directions move that Hessian's parameters
(``landscape.random_params: hessian``) or all of them.
"""

from __future__ import annotations

from collections.abc import Mapping

from hessian_spectra import layout
from hessian_spectra.studies.base import RunJob, Study, spectrum_job
from hessian_spectra.studies.large_batch import plan as planning
from hessian_spectra.studies.large_batch.claims import CLAIMS

TABLE = "top_eigenvalues.tsv"


def _follows_eigenvectors(settings: dict, hessian: str) -> bool:
    """Whether the landscape walks along ``hessian``'s top-2 eigenvectors."""
    landscape = settings["landscape"]
    return "eigen" in landscape["directions"] and hessian == landscape["hessian"]


def spectrum_settings(settings: dict, run: dict, wildcards: Mapping[str, str], input) -> dict:
    """``spectrum`` flags of the final checkpoint's ``last_layer`` (dense eigh) or ``full`` (Lanczos) Hessian."""
    spectrum = settings["spectrum"]
    method = ({"params": "last_layer", "dense": True, "max_lanes": 64} if wildcards["hessian"] == "last_layer"
              else {"params": "all", "tol": spectrum["tol"], "max_steps": spectrum["max_steps"]})
    return {"top_k": spectrum["top_k"], "batch_size": spectrum["batch_size"], **method,
            "eigenvectors": _follows_eigenvectors(settings, wildcards["hessian"])}


def landscape_eigenvectors(settings: dict, run: dict) -> dict:
    """The spectrum whose eigenvectors the landscape follows, if it follows any."""
    landscape = settings["landscape"]
    if "eigen" not in landscape["directions"]:
        return {}
    return {"eigenvectors": layout.final_spectrum(run["key"], landscape["hessian"], "npz")}


def landscape_settings(settings: dict, run: dict, wildcards: Mapping[str, str], input) -> dict:
    """``landscape`` flags: directions, grid, and the parameters random directions move."""
    landscape = settings["landscape"]
    random_params = ("last_layer" if landscape["random_params"] == "hessian" and landscape["hessian"] == "last_layer"
                     else "all")
    return {"directions": landscape["directions"], "grid_points": landscape["grid_points"],
            "extent": landscape["extent"], "batch_size": landscape["batch_size"], "random_params": random_params,
            "seed": run["seed"]}


STUDY = Study(
    name="large_batch",
    source="000",
    title="large-batch training and the Hessian's top eigenvalues and loss surface",
    claims=CLAIMS,
    jobs=(
        spectrum_job("spectrum", "last_checkpoint", lambda key, suffix: layout.final_spectrum(key, "{hessian}", suffix),
                     spectrum_settings, log="large_batch_spectrum_{hessian}", wildcards={"hessian": "last_layer|full"}),
        RunJob("landscape", "landscape", {"checkpoint": "last_checkpoint", "data": "subset"},
               {"out": layout.landscape}, landscape_settings, log="large_batch_landscape",
               extra_inputs=landscape_eigenvectors),
    ),
    table=TABLE,
    scorecard_tables=(TABLE,),
    run_tables=lambda run: [layout.landscape(run["key"])],
    figures=lambda runs, settings: planning.plan(runs).figures(),
    plan=lambda runs, settings: planning.plan(runs),
    rules="rules/large_batch.smk",
)
