"""Seed 001, sharpest directions and Nudged SGD: the top-K Hessian eigenvalues after every epoch, their learning-rate
and batch-size grids against the stability edge, and NSGD's overshoot gamma."""

from __future__ import annotations

from hessian_spectra import layout
from hessian_spectra.studies.base import Study, walk_job
from hessian_spectra.studies.sharpest_directions.claims import CLAIMS

TABLE = "sharpness_table.csv"
FIGURES = ("spectrum_trajectory.png", "lr_grid.png", "bs_grid.png", "nsgd_gamma.png")


STUDY = Study(
    name="sharpest_directions",
    source="001",
    title="the sharpest directions along SGD's trajectory, and Nudged SGD",
    claims=CLAIMS,
    jobs=(
        walk_job("trajectory", "sharpest-directions trajectory", layout.trajectory, "spectrum", log="trajectory"),
    ),
    table=TABLE,
    scorecard_tables=(),
    run_tables=lambda run: [layout.trajectory(run["key"])],
    figures=lambda runs, settings: list(FIGURES),
    rules="rules/sharpest_directions.smk",
)
