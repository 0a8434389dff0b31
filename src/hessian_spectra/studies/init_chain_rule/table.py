"""The table of study ``init_chain_rule`` (seed 003): its runs' chain-rule tables as one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from hessian_spectra.layout import seed_of
from hessian_spectra.tables import read_table


def build_table(paths: Iterable[str | Path]) -> pd.DataFrame:
    """The runs' ``init-chain-rule track`` tables (or the study's table itself), concatenated: one row per run x
    step x block x quantity x index, with each run's training ``seed`` (from its key) beside ``run``."""
    table = pd.concat([read_table(path, required=("run", "sd", "block", "quantity")) for path in paths],
                      ignore_index=True)
    if table.empty:
        raise ValueError("the chain-rule tables hold no rows")
    if "seed" not in table:
        table.insert(table.columns.get_loc("run") + 1, "seed", table["run"].map(seed_of))
    if "probes" in table:
        table["probes"] = table["probes"].astype("Int64")  # a count, empty where a row has no probes
    if table["sd"].isna().any():
        raise ValueError("a run has no init sd (model_options.init_sd): the figures are one per init sd")
    return table
