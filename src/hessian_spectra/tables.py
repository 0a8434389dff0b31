"""Tidy tables on disk (torch-free): atomic TSV writes with one spelling of every cell, and reads that fail in
one line naming the file."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hessian_spectra.atomic import atomic_write

if TYPE_CHECKING:
    import pandas as pd

def regenerate(path: str | Path) -> str:
    """What to do about a damaged workflow file: Snakemake rebuilds it, and everything made from it, when forced."""
    return f"rerun Snakemake with `--forcerun {path}`, which rebuilds it and everything made from it"

FULL = "full"  # the block name of the whole network (all trainable parameters) in every table


def cell(value: Any) -> str:
    """How a value is spelled in a table: booleans true/false, floats round-trip exactly, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def write_rows(path: str | Path, columns: Sequence[str], rows: Iterable[dict]) -> None:
    """Write dict rows as a TSV with ``columns``, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([cell(row[column]) for column in columns] for row in rows)

    atomic_write(path, write)


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame as a TSV (or CSV, by suffix) atomically, booleans spelled true/false (also in a column
    that leaves some rows empty, such as ``converged`` beside rows that are no eigenvalue)."""
    spelled = table.copy()
    for column in spelled.columns:
        values = spelled[column]
        flags = values.dropna()
        if values.dtype == bool or (values.dtype == object and len(flags) and flags.map(type).eq(bool).all()):
            spelled[column] = values.map({True: "true", False: "false"})
    sep = "," if Path(path).suffix == ".csv" else "\t"
    atomic_write(path, lambda tmp: spelled.to_csv(tmp, sep=sep, index=False, na_rep="nan"))


def read_table(path: str | Path, required: Sequence[str] = ()) -> pd.DataFrame:
    """A TSV (or CSV) table as a DataFrame, ``true``/``false`` read as booleans; a missing, empty or damaged file,
    or one without the ``required`` columns, raises one line naming it."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table missing (run Snakemake, which makes it)")
    try:
        table = pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t", true_values=["true"],
                            false_values=["false"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        detail = str(err).splitlines()[0]
        raise ValueError(f"{path}: table unreadable, truncated or corrupt ({detail}); {regenerate(path)}") from None
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: table lacks column(s) {', '.join(missing)}; {regenerate(path)}")
    return table
