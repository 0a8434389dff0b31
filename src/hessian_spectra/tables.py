"""Tidy tables on disk (torch-free): atomic TSV writes with one spelling of every cell, and reads of tables and
``.npz`` arrays that fail in one line naming the file and the ``--forcerun`` that rebuilds it."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hessian_spectra.atomic import atomic_write

if TYPE_CHECKING:
    import numpy as np
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


def load_run(path: str | Path) -> dict:
    """A run's training configuration (``run.json``), or one line naming a missing or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: run.json missing (train the run first)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: run.json unreadable ({err}); {regenerate(path)}") from None


def read_arrays(path: str | Path, required: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (never unpickled); a missing or damaged file, or one without the ``required``
    arrays, raises one line naming it."""
    import zipfile
    import zlib

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: arrays missing (run Snakemake, which makes it)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path}: arrays unreadable, truncated or corrupt ({detail}); {regenerate(path)}") from None
    require_arrays(path, arrays, required)
    return arrays


def require_arrays(path: str | Path, arrays: dict, required: Sequence[str]) -> None:
    """One line naming ``path`` and the ``required`` arrays that ``arrays`` (read from it) lacks, if any."""
    missing = [key for key in required if key not in arrays]
    if missing:
        raise ValueError(f"{path}: lacks array(s) {', '.join(missing)}; {regenerate(path)}")
