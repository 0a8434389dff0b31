"""What a config's findings scorecard may read: its own planned runs and the tables made from them, nothing else.

Torch- and pandas-free at import (the Snakefile imports it at parse time to declare the findings job's inputs). The
same ``Evidence`` lists the files as the rule's inputs and reads them in the job, and refuses to read any other, so
the scorecard of one config never sees another config's runs or an undeclared table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hessian_spectra import layout

if TYPE_CHECKING:
    import pandas as pd

    from hessian_spectra.studies import Study


@dataclass(frozen=True)
class Evidence:
    """One config's planned runs per study (``{"key", "epochs"}`` each) and its name, which places its tables."""

    config: str
    runs: Mapping[str, list[dict]]
    modules: tuple[str, ...] = ()  # the config's ``study_modules``
    _files: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.runs) - set(self.studies))
        if unknown:
            raise ValueError(f"unknown stud{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                             f"allowed: {', '.join(self.studies)}")
        object.__setattr__(self, "_files", frozenset(self.files()))

    @classmethod
    def of(cls, config: str, planned: Mapping[str, Mapping[str, Any]], studies: list[str],
           modules: Sequence[str] = ()) -> Evidence:
        """The evidence of ``studies`` from the planned runs (``runs.plan_runs``) of the config named ``config``,
        whose ``study_modules`` are ``modules``."""
        runs = {study: [] for study in studies}
        for run in planned.values():
            if run["study"] in runs:
                runs[run["study"]].append({"key": run["key"], "epochs": run["epochs"]})
        return cls(config, runs, tuple(modules))

    @classmethod
    def from_json(cls, text: str) -> Evidence:
        """The evidence ``to_json`` wrote."""
        plan = json.loads(text)
        return cls(plan["config"], plan["runs"], tuple(plan.get("modules", ())))

    def to_json(self) -> str:
        """The plan as one line of JSON (what the findings job receives)."""
        plan = {"config": self.config, "runs": self.runs, **({"modules": list(self.modules)} if self.modules else {})}
        return json.dumps(plan, sort_keys=True, separators=(",", ":"))

    @property
    def studies(self) -> dict[str, Study]:
        """The registry of the config's studies."""
        from hessian_spectra.studies import registry

        return registry(self.modules)

    def study_table(self, study: str, name: str | None = None) -> str:
        """The path of ``study``'s table ``name`` in this config (default: the study's own table)."""
        return layout.study_table(study, name or self.studies[study].table, self.config)

    def files(self) -> list[str]:
        """Every file the scorecard reads: each planned run's record and history and the tables made from it."""
        files = []
        studies = self.studies
        for name, runs in self.runs.items():
            study = studies[name]
            files += [self.study_table(name, table) for table in study.scorecard_tables] if runs else []
            for run in runs:
                run_files = layout.run_files(run["key"])
                files += [run_files.run_json, run_files.history, *study.run_tables(run)]
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
