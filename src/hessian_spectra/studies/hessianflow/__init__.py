"""Seed 002, HessianFlow and ABSA: the dominant eigenvalue after every epoch (power iteration as the source does, and
Lanczos with its residual), SGD against ABSA's adaptive batch size; Hutchinson trace and SLQ density at the end."""

from __future__ import annotations

from hessian_spectra import layout
from hessian_spectra.studies.base import Study, section_settings, spectrum_job, walk_job
from hessian_spectra.studies.hessianflow.claims import CLAIMS

FIGURES = ("dominant_eigenvalue.png", "absa_schedule.png", "esd_final.png")


STUDY = Study(
    name="hessianflow",
    source="002",
    title="HessianFlow: the dominant eigenvalue over training, and ABSA's adaptive batch size",
    claims=CLAIMS,
    jobs=(
        walk_job("eigen", "hessianflow eigen", layout.dominant_eigen, "eigen", log="hessianflow_eigen"),
        spectrum_job("final", "last_checkpoint", layout.final_trace_density, section_settings("final"),
                     log="hessianflow_final"),
    ),
    table="dominant_eigenvalue.tsv",
    scorecard_tables=(),
    run_tables=lambda run: [layout.dominant_eigen(run["key"])],
    figures=lambda runs, settings: list(FIGURES),
    rules="rules/hessianflow.smk",
)
