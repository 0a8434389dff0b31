"""Compare every table of two results folders: the largest relative difference of each, and of each kind of quantity.

Tables (``*.tsv``, ``*.csv``) are matched by relative path and compared row by row. A numeric cell's difference is
``|a - b| / max(|a|, |b|, tiny)`` (0 where both are NaN, inf where one is), and also ``|a - b|`` over the largest
magnitude of its column in that table (the *scaled* difference, which stays meaningful for values near zero, such
as a Hessian's null-space eigenvalues); a non-numeric column is either identical or not. The summary groups
columns by name (``value`` by the row's ``quantity``, timings of ``benchmarks/`` tables together), so that
eigenvalues and Lanczos residuals are reported apart. No threshold is applied: every number is printed;
``--exclude`` leaves tables out by pattern (and lists them), e.g. to see what remains besides a known difference.

    python benchmarks/compare_runs.py --a /work/base/results --b /work/old/results --out comparison.md
"""

from __future__ import annotations

import argparse
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TINY = np.finfo(np.float64).tiny
TIMING = "timing and memory (benchmarks/*, seconds)"


@dataclass
class Largest:
    """The largest difference offered so far, and where: table, column, row, and the two values."""

    diff: float = 0.0
    where: str = ""
    a: object = None
    b: object = None

    def offer(self, diff: float, where: str, a: object, b: object) -> None:
        """Keep ``diff`` and where it was if it is the largest so far (or the first offered)."""
        if diff > self.diff or not self.where:
            self.diff, self.where, self.a, self.b = diff, where, a, b


@dataclass
class Kind:
    """The largest relative and scaled differences of one kind of quantity, over every table."""

    relative: Largest = field(default_factory=Largest)
    scaled: Largest = field(default_factory=Largest)


@dataclass
class TableReport:
    """One table's comparison: its rows, its largest differences, the non-numeric columns that differ, a note."""

    path: Path
    rows: str
    largest: Largest = field(default_factory=Largest)
    values: Largest = field(default_factory=Largest)  # outside residuals and timings
    differing_text: dict[str, int] = field(default_factory=dict)  # non-numeric column -> rows that differ
    note: str = ""


def tables(root: Path) -> set[Path]:
    """Relative paths of the tables under ``root``."""
    return {p.relative_to(root) for p in root.rglob("*") if p.suffix in (".tsv", ".csv") and p.is_file()}


def excluded(path: Path, patterns: list[str]) -> bool:
    """Whether ``path`` matches any of the glob ``patterns``."""
    return any(fnmatch.fnmatch(str(path), pattern) for pattern in patterns)


def read(path: Path) -> pd.DataFrame:
    """A table file as a frame: tab-separated for ``.tsv``, comma-separated otherwise."""
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")


def differences(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise ``|x - y| / max(|x|, |y|, tiny)`` and ``|x - y|`` over the largest finite ``|x|``, ``|y|``;
    0 where both are NaN (or equal infinities), inf where one is."""
    with np.errstate(invalid="ignore"):
        absolute = np.abs(x - y)
    same = (np.isnan(x) & np.isnan(y)) | (x == y)
    absolute[same] = 0.0
    absolute[np.isnan(absolute)] = np.inf
    magnitudes = np.abs(np.concatenate([x, y]))
    scale = max(float(magnitudes[np.isfinite(magnitudes)].max(initial=0.0)), TINY)
    with np.errstate(invalid="ignore"):
        relative = absolute / np.maximum(np.maximum(np.abs(x), np.abs(y)), TINY)
    relative[same] = 0.0
    relative[np.isnan(relative)] = np.inf
    return relative, absolute / scale


def kind(path: Path, column: str, quantity: str | None) -> str:
    """The summary group of ``column``: timings and memory, ``value`` by its quantity, else the column's name
    without a trailing index (``residual1``, ``residual2``: ``residual``)."""
    if path.parts[0] == "benchmarks" or column == "seconds":
        return TIMING
    if column == "value" and quantity is not None:
        return f"value [{quantity}]"
    return re.sub(r"\d+$", "", column)


def is_numeric(column: pd.Series) -> bool:
    """Whether a column holds numbers (booleans are compared as text)."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def compare(path: Path, a: pd.DataFrame, b: pd.DataFrame, kinds: dict[str, Kind]) -> TableReport:
    """One table's report; also offers each numeric cell's differences to its kind in ``kinds``."""
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return TableReport(path, f"{len(a)} / {len(b)}", note=f"shape or columns differ: {a.shape} / {b.shape}")
    report = TableReport(path, str(len(a)))
    quantities = a["quantity"].map(str).to_numpy() if "quantity" in a.columns else np.full(len(a), None)
    for column in a.columns:
        if not (is_numeric(a[column]) and is_numeric(b[column])):
            changed = int((a[column].map(str) != b[column].map(str)).sum())
            if changed:
                report.differing_text[column] = changed
            continue
        x, y = a[column].to_numpy(np.float64), b[column].to_numpy(np.float64)
        for quantity in dict.fromkeys(quantities):
            rows = np.flatnonzero(quantities == quantity)
            group = kind(path, column, quantity)
            relative, scaled = differences(x[rows], y[rows])
            found = kinds.setdefault(group, Kind())
            for largest, diff in ((found.relative, relative), (found.scaled, scaled)):
                row = rows[np.argmax(diff)]
                largest.offer(float(diff.max()), f"{path} `{column}` row {row}", x[row], y[row])
            row = rows[np.argmax(relative)]
            report.largest.offer(float(relative.max()), f"`{column}`", x[row], y[row])
            if group != TIMING and "residual" not in group:
                report.values.offer(float(relative.max()), f"`{column}`", x[row], y[row])
    return report


def markdown(reports: list[TableReport], kinds: dict[str, Kind], only: dict[str, list[Path]]) -> str:
    """The per-kind summary, the non-numeric columns that differ, one row per table, and the tables found in one
    folder only or excluded."""
    lines = [
        "| kind of quantity | largest relative difference | where | a | b | largest scaled difference | where |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, found in sorted(kinds.items(), key=lambda item: -item[1].relative.diff):
        r, s = found.relative, found.scaled
        if r.diff:
            lines.append(f"| {group} | {r.diff:.3g} | {r.where} | {r.a:.10g} | {r.b:.10g} | {s.diff:.3g} | {s.where} |")
    equal = sorted(group for group, found in kinds.items() if not found.relative.diff)
    lines.append(f"| {', '.join(equal) or 'none'} | 0 (equal in every row) | | | | | |")
    changed: dict[str, list[int]] = {}
    for report in reports:
        for column, rows in report.differing_text.items():
            changed.setdefault(column, [0, 0])[0] += rows
            changed[column][1] += 1
    listed = "; ".join(f"`{c}` in {rows} rows of {n} tables" for c, (rows, n) in sorted(changed.items()))
    lines += ["", f"Non-numeric columns that differ: {listed or 'none'}", ""]
    lines += [
        "| table | rows | largest relative difference | in | outside residuals and timings | in | text columns |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        differ = ", ".join(f"`{column}` ({rows} rows)" for column, rows in r.differing_text.items())
        text = r.note or (f"differ: {differ}" if differ else "identical")
        big = "" if r.note else f"{r.largest.diff:.3g}"
        values = f"{r.values.diff:.3g}" if r.values.where else ""
        lines.append(f"| {r.path} | {r.rows} | {big} | {r.largest.where} | {values} | {r.values.where} | {text} |")
    for side, paths in only.items():
        lines += ["", f"{side}: " + (", ".join(map(str, paths)) or "none")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Compare the folders ``--a`` and ``--b`` and print the Markdown report (also to ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="a results folder")
    parser.add_argument("--b", type=Path, required=True, help="the results folder to compare it with")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    parser.add_argument("--exclude", action="append", default=[], help="leave out tables whose path matches (glob)")
    args = parser.parse_args(argv)
    in_a, in_b = tables(args.a), tables(args.b)
    left_out = sorted(p for p in in_a | in_b if excluded(p, args.exclude))
    in_a, in_b = in_a - set(left_out), in_b - set(left_out)
    kinds: dict[str, Kind] = {}
    reports = [compare(p, read(args.a / p), read(args.b / p), kinds) for p in sorted(in_a & in_b)]
    only = {f"Only in {args.a}": sorted(in_a - in_b), f"Only in {args.b}": sorted(in_b - in_a)}
    if args.exclude:
        only[f"Excluded ({', '.join(args.exclude)})"] = left_out
    text = markdown(reports, kinds, only)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
