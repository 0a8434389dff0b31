"""Seed 002, HessianFlow and ABSA: the dominant eigenvalue after every epoch (power iteration as the source does, and
Lanczos with its residual), SGD against ABSA's adaptive batch size; Hutchinson trace and SLQ density at the end."""

from __future__ import annotations

from collections.abc import Mapping

from hessian_spectra import layout
from hessian_spectra.studies.base import RunJob, Study
from hessian_spectra.studies.hessianflow.claims import CLAIMS

FIGURES = ("dominant_eigenvalue.png", "absa_schedule.png", "esd_final.png")


def eigen_settings(settings: dict, run: dict, wildcards: Mapping[str, str], input) -> dict:
    """The ``eigen`` section: power iteration's and Lanczos' settings at every checkpoint."""
    return dict(settings["eigen"])


def final_settings(settings: dict, run: dict, wildcards: Mapping[str, str], input) -> dict:
    """The ``final`` section: trace and density of the final checkpoint."""
    return dict(settings["final"])


STUDY = Study(
    name="hessianflow",
    source="002",
    title="HessianFlow: the dominant eigenvalue over training, and ABSA's adaptive batch size",
    claims=CLAIMS,
    jobs=(
        RunJob("eigen", "dominant-eigen", {"run_json": "run_json", "checkpoints": "checkpoints", "subset": "subset"},
               {"out": layout.dominant_eigen}, eigen_settings, log="hessianflow_eigen"),
        RunJob("final", "spectrum", {"checkpoint": "last_checkpoint", "data": "subset"},
               {"out": lambda key: layout.final_trace_density(key, "tsv"),
                "npz": lambda key: layout.final_trace_density(key, "npz")},
               final_settings, log="hessianflow_final"),
    ),
    table=None,
    scorecard_tables=(),
    run_tables=lambda run: [layout.dominant_eigen(run["key"])],
    figures=lambda runs, settings: list(FIGURES),
    rules="rules/hessianflow.smk",
)
