"""Seed 003, weight initialisation and the Hessian chain rule: ||H||_F of the tracked block and the split
H = G + (H - G) at every checkpoint, one figure per init sd."""

from __future__ import annotations

from collections.abc import Mapping

from hessian_spectra import layout
from hessian_spectra.studies.base import RunJob, Study
from hessian_spectra.studies.init_chain_rule.claims import CLAIMS

TABLE = "chain_rule.tsv"


def track_settings(settings: dict, run: dict, wildcards: Mapping[str, str], input) -> dict:
    """The ``tracking`` section: every key is a flag of the tracking command."""
    return dict(settings["tracking"])


def figures(runs: list[dict], settings: dict) -> list[str]:
    """One figure per init sd (named ``f"{sd:g}"``), all sds together, and the chain-rule terms."""
    sds = dict.fromkeys(run["model_options"]["init_sd"] for run in runs)
    return [f"init_sd_{sd:g}.png" for sd in sds] + ["init_sd_all.png", "chain_rule_terms.png"]


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
    figures=figures,
    rules="rules/init_chain_rule.smk",
)
