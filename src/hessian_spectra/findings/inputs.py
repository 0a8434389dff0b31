"""What each claim reads: a config's planned runs (record, history, why one cannot count) and its tables, every
one through ``Evidence``; and the runs grouped into configurations, the same run over its seeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from hessian_spectra import layout
from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.divergence import failure
from hessian_spectra.evidence import Evidence
from hessian_spectra.findings.core import Measure, pool


def load_runs(ev: Evidence, study: str) -> list[dict]:
    """The config's planned runs of ``study``, each with its history and its ``failure`` (None when it counts)."""
    runs = []
    for planned in ev.runs.get(study, []):
        files = layout.run_files(planned["key"])
        run = ev.read_json(files.run_json)
        run["history"] = ev.read_table(files.history).sort_values("epoch").reset_index(drop=True)
        run["failure"] = failure(run["history"], dataset_info(run["dataset"]).num_classes)
        runs.append(run)
    return runs


def table(ev: Evidence, path: str, runs: Sequence[dict] | None = None) -> pd.DataFrame:
    """A declared table; a study table keeps only the rows of ``runs``."""
    rows = ev.read_table(path)
    return rows if runs is None else rows[rows["run"].isin([run["key"] for run in runs])]


def study_table(ev: Evidence, study: str, runs: Sequence[dict], name: str | None = None) -> pd.DataFrame:
    """The config's table ``name`` of ``study`` (default: the study's own table), the rows of ``runs``."""
    return table(ev, ev.study_table(study, name), runs)


def seed(run: dict) -> int:
    """A run's training seed."""
    return layout.seed_of(run["key"])


def configurations(runs: Sequence[dict]) -> list[list[dict]]:
    """The runs grouped by everything but their seed (in the order each first appears), seeds ascending."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(layout.without_seed(run["key"]), []).append(run)
    return [sorted(group, key=seed) for group in groups.values()]


def excluded(runs: Sequence[dict]) -> str:
    """Why a configuration cannot count: the seeds that diverged or did not learn (empty when every seed counts)."""
    bad = [run for run in runs if run["failure"] is not None]
    if len(runs) == 1:
        return str(bad[0]["failure"]) if bad else ""
    return ", ".join(f"seed {seed(run)} {run['failure']}" for run in bad)


def pooled(runs: Sequence[dict], measure: Callable[[dict], Measure]) -> Measure:
    """``measure`` of each seed's run of one configuration, pooled over the seeds (``core.pool``), each seed's part
    kept."""
    return pool([measure(run) for run in runs], [seed(run) for run in runs])


def final(run: dict, column: str) -> float:
    """A run's last history value of ``column``."""
    return float(run["history"][column].iloc[-1])
