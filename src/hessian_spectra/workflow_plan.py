"""Everything the workflow plans when it is parsed, in one call from common.smk (torch-free): the study registry,
the config schema with a section per study, the config with its defaults, the planned runs, the training rules'
variants, and each study's plan; a config the workflow cannot run raises ``ValueError`` naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hessian_spectra.runs import check_config, load_yaml, plan_runs, runs_of, with_defaults
from hessian_spectra.studies import Study, config_schema, registry
from hessian_spectra.train.plan import variants_by_epochs


@dataclass(frozen=True)
class WorkflowPlan:
    """What the rule files read: ``studies`` by name, ``schema``, ``config`` (defaults filled in), ``runs`` by key,
    ``training_variants`` (epochs -> run variants) and ``plans`` (study name -> its plan)."""

    studies: Mapping[str, Study]
    schema: dict
    config: dict
    runs: dict[str, dict]
    training_variants: dict[int, list[str]]
    plans: dict[str, Any]


def plan_workflow(config: dict, schema_file: str | Path) -> WorkflowPlan:
    """Check ``config`` against the schema file (with a section for each study of the registry and of the config's
    ``study_modules``) and plan its runs and each study's grouping of them."""
    studies = registry(config.get("study_modules", []))
    schema = config_schema(load_yaml(schema_file), studies)
    check_config(config, schema)
    config = with_defaults(config, schema)
    runs = plan_runs(config, schema)
    plans = {study.name: study.plan(runs_of(runs, study.name), config["studies"].get(study.name, {}))
             for study in studies.values() if study.plan}
    return WorkflowPlan(studies, schema, config, runs, variants_by_epochs(runs.values()), plans)
