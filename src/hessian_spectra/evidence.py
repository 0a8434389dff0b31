"""What a config's findings scorecard may read: its own planned runs and the tables made from them, nothing else.

Torch- and pandas-free at import (the Snakefile imports it at parse time to declare the findings job's inputs). The
same ``Evidence`` lists the files as the rule's inputs and reads them in the job, and refuses to read any other, so
the scorecard of one config never sees another config's runs or an undeclared table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hessian_spectra import layout

if TYPE_CHECKING:
    import pandas as pd


def _study_tables(study: str, config: str) -> list[str]:
    """The study tables the scorecard reads for ``study``."""
    names = {
        "large_batch": [layout.STUDY_TABLES["large_batch"]],
        "sharpest_directions": [layout.STUDY_TABLES["sharpest_directions"]],
        "init_chain_rule": [layout.STUDY_TABLES["init_chain_rule"]],
        "layerhessians": [layout.MATCH_PROFILES],
    }.get(study, [])
    return [layout.study_table(study, name, config) for name in names]


def _run_tables(study: str, run: Mapping[str, Any]) -> list[str]:
    """The per-run curvature tables the scorecard reads for one run of ``study``."""
    key = run["key"]
    if study == "large_batch":
        return [layout.landscape(key)]
    if study == "sharpest_directions":
        return [layout.trajectory(key)]
    if study == "hessianflow":
        return [layout.dominant_eigen(key)]
    if study == "layerhessians":
        return [layout.layer_spectrum(key, epoch, "tsv") for epoch in range(run["epochs"] + 1)]
    return []


@dataclass(frozen=True)
class Evidence:
    """One config's planned runs per study (``{"key", "epochs"}`` each) and its name, which places its tables."""

    config: str
    runs: Mapping[str, list[dict]]
    _files: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_files", frozenset(self.files()))

    @classmethod
    def of(cls, config: str, planned: Mapping[str, Mapping[str, Any]], studies: list[str]) -> Evidence:
        """The evidence of ``studies`` from the planned runs (``runs.plan_runs``) of the config named ``config``."""
        runs = {study: [] for study in studies}
        for run in planned.values():
            if run["study"] in runs:
                runs[run["study"]].append({"key": run["key"], "epochs": run["epochs"]})
        return cls(config, runs)

    @classmethod
    def from_json(cls, text: str) -> Evidence:
        """The evidence ``to_json`` wrote."""
        plan = json.loads(text)
        return cls(plan["config"], plan["runs"])

    def to_json(self) -> str:
        """The plan as one line of JSON (what the findings job receives)."""
        return json.dumps({"config": self.config, "runs": self.runs}, sort_keys=True, separators=(",", ":"))

    def files(self) -> list[str]:
        """Every file the scorecard reads: each planned run's record and history and the tables made from it."""
        files = []
        for study, runs in self.runs.items():
            files += _study_tables(study, self.config) if runs else []
            for run in runs:
                run_files = layout.run_files(run["key"])
                files += [run_files.run_json, run_files.history, *_run_tables(study, run)]
        return files

    def read_json(self, path: str) -> dict:
        """A declared JSON file."""
        with open(self._declared(path)) as handle:
            return json.load(handle)

    def read_table(self, path: str) -> pd.DataFrame:
        """A declared table."""
        from hessian_spectra.tables import read_table

        return read_table(self._declared(path))

    def _declared(self, path: str) -> str:
        if path not in self._files:
            raise RuntimeError(f"{path}: not a declared input of the findings job (a bug: add it to Evidence.files)")
        return path
