"""Seed 003, weight initialisation and the Hessian chain rule: ||H||_F of the tracked block and the split
H = G + (H - G) at every checkpoint, one figure per init sd."""

from __future__ import annotations

from collections.abc import Mapping

from hessian_spectra import layout
from hessian_spectra.studies.base import RunJob, Study
from hessian_spectra.studies.init_chain_rule.claims import CLAIMS
from hessian_spectra.studies.init_chain_rule.plan import plan

TABLE = "chain_rule.tsv"


def track_settings(settings: dict, run: dict, wildcards: Mapping[str, str], input) -> dict:
    """The ``tracking`` section: every key is a flag of the tracking command."""
    return dict(settings["tracking"])


STUDY = Study(
    name="init_chain_rule",
    source="003",
    title="weight initialisation and the Hessian chain rule",
    claims=CLAIMS,
    jobs=(
        RunJob("track", "chain-rule", {"run_json": "run_json", "checkpoints": "checkpoints", "subset": "subset"},
               {"out": layout.chain_rule}, track_settings, log="chain_rule"),
    ),
    table=TABLE,
    scorecard_tables=(TABLE,),
    run_tables=lambda run: [],
    figures=lambda runs, settings: plan(runs).figures(),
    plan=lambda runs, settings: plan(runs),
    rules="rules/init_chain_rule.smk",
)
