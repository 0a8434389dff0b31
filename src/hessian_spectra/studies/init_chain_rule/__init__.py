"""Seed 003, weight initialisation and the Hessian chain rule: ||H||_F of the tracked block and the split
H = G + (H - G) at every checkpoint, one figure per init sd."""

from __future__ import annotations

from hessian_spectra import layout
from hessian_spectra.studies.base import Study, walk_job
from hessian_spectra.studies.init_chain_rule import plan as planning
from hessian_spectra.studies.init_chain_rule.claims import CLAIMS

TABLE = "chain_rule.tsv"


STUDY = Study(
    name="init_chain_rule",
    source="003",
    title="weight initialisation and the Hessian chain rule",
    claims=CLAIMS,
    jobs=(
        walk_job("track", "init-chain-rule track", layout.chain_rule, "tracking", log="chain_rule"),
    ),
    table=TABLE,
    scorecard_tables=(TABLE,),
    run_tables=lambda run: [],
    figures=lambda runs, settings: planning.plan(runs).figures(),
    plan=lambda runs, settings: planning.plan(runs),
    rules="rules/init_chain_rule.smk",
)
