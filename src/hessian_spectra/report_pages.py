"""The pages that ``snakemake --report`` shows besides the figures: every study table and the findings scorecard as
HTML, the verdicts at a glance (the report's start page embeds them), and where these pages live.

Torch-free; the report's start page is ``workflow/report/workflow.rst``. Tables are shown as written (every cell
as its text in the file), so a page never rounds or hides a number.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hessian_spectra import layout
from hessian_spectra.findings import ALL_SEEDS, FAILS, HOLDS, UNSURE

# colour-blind-safe (ColorBrewer Dark2) fill of each verdict, shared by the pages and the picture
VERDICT_COLOURS = {HOLDS: "#1b9e77", FAILS: "#d95f02", UNSURE: "#bdbdbd"}
VERDICTS_TABLE_ID = "hs-verdicts"
_STYLE = """
body { font-family: sans-serif; font-size: 13px; margin: 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.verdict { color: #000; font-weight: bold; white-space: nowrap; }
"""


def pages(config: str = "") -> str:
    """Where the report's pages of the config named ``config`` live (beside its tables and figures)."""
    return f"{layout.config_root(config)}/report"


def table_page(study: str, table: str, config: str = "") -> str:
    """The HTML page of a study's table (``layout.study_table(study, table, config)``) in the report."""
    return f"{pages(config)}/{study}/{Path(table).stem}.html"


def scorecard_page(config: str = "") -> str:
    """The HTML page of the whole findings scorecard (``layout.findings(config)``)."""
    return f"{pages(config)}/findings/scorecard.html"


def verdicts_page(config: str = "") -> str:
    """The verdicts at a glance, an HTML fragment: one row per claim, one coloured cell per seed (the report's
    start page embeds it)."""
    return f"{pages(config)}/findings/verdicts.html"


def verdicts_figure(config: str = "") -> str:
    """The verdicts as a picture: one coloured cell per claim and seed."""
    return layout.figure("findings", "verdicts.png", config)


def read_text_table(path: str | Path) -> pd.DataFrame:
    """A TSV (or CSV, by suffix) with every cell as its text in the file."""
    path = Path(path)
    return pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t", dtype=str, keep_default_na=False)


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def _verdict_cell(verdict: str, why: str = "", span: int = 1) -> str:
    """A cell of ``verdict`` (and ``why``, if given) on the verdict's colour, across ``span`` columns."""
    colour = VERDICT_COLOURS.get(verdict, "#ffffff")
    text = f"{verdict}: {why}" if why else verdict
    columns = f' colspan="{span}"' if span > 1 else ""
    return f'<td class="verdict"{columns} style="background:{colour};color:#000">{html.escape(text)}</td>'


def _html_table(table: pd.DataFrame, verdicts: str | None = None) -> str:
    """Every row of ``table`` (text cells) as an HTML table; the cells of column ``verdicts`` coloured."""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in table.columns)
    rows = [
        "<tr>" + "".join(
            _verdict_cell(value) if column == verdicts else f"<td>{html.escape(value)}</td>"
            for column, value in zip(table.columns, row)
        ) + "</tr>"
        for row in table.itertuples(index=False)
    ]
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n"


def table_html(path: str | Path) -> str:
    """A whole page of the table at ``path``: its file name, row count and every row."""
    table = read_text_table(path)
    body = f"<p><code>{html.escape(str(path))}</code>: {len(table)} rows.</p>\n" + _html_table(table)
    return _page(Path(path).name, body)


@dataclass(frozen=True)
class ClaimVerdicts:
    """One claim of a scorecard and its verdict on each seed (and on their means, seed ``all``); ``unseeded``:
    (verdict, why) of a claim judged on no seed (its study has no run in the config), else None."""

    source: str
    study: str
    claim: str
    seeds: dict[str, str]
    unseeded: tuple[str, str] | None


def seed_of(cell: str) -> str | None:
    """A scorecard's seed cell as written (``0``, ``0.0`` beside empty ones, or ``all``: the seeds' means) as a
    seed's name (``0``, ``all``); None when empty."""
    cell = cell.strip().lower()
    if cell in ("", "nan"):
        return None
    return ALL_SEEDS if cell == ALL_SEEDS else str(int(float(cell)))


def seed_heading(seed: str) -> str:
    """A seed's column heading: ``seed 0``, or, for ``all``, the verdict on the seeds' means, which decides."""
    return "all seeds (decides)" if seed == ALL_SEEDS else f"seed {seed}"


def verdict_grid(findings: pd.DataFrame) -> tuple[list[str], list[ClaimVerdicts]]:
    """The seeds of a scorecard (text cells, ``read_text_table``; ``all`` last) and its claims in order, each with
    its verdicts."""
    findings = findings.assign(seed=findings["seed"].map(seed_of))
    seeds = sorted(set(findings["seed"].dropna()), key=lambda seed: (seed == ALL_SEEDS, seed != ALL_SEEDS and int(seed)))
    claims = []
    for (study, claim), rows in findings.groupby(["study", "claim"], sort=False):
        unseeded = rows[rows["seed"].isna()]
        claims.append(ClaimVerdicts(
            str(rows["source"].iloc[0]), study, claim,
            {row.seed: row.verdict for row in rows.itertuples() if row.seed is not None},
            (unseeded["verdict"].iloc[0], unseeded["why"].iloc[0]) if len(unseeded) else None,
        ))
    return seeds, claims


def verdicts_html(findings: pd.DataFrame) -> str:
    """The verdicts of a scorecard as one HTML table: a row per claim (in the scorecard's order: its source and
    study, its text), a column per seed, each cell its verdict on a verdict's colour (empty where the claim has no
    row for that seed; one cell across the seeds for a claim whose study has no run)."""
    seeds, claims = verdict_grid(findings)
    head = "".join(f"<th>{seed_heading(seed)}</th>" for seed in seeds) or "<th>verdict</th>"
    rows = []
    for claim in claims:
        if claim.unseeded is not None:
            cells = _verdict_cell(*claim.unseeded, span=max(len(seeds), 1))
        else:
            cells = "".join(_verdict_cell(claim.seeds[seed]) if seed in claim.seeds else "<td></td>" for seed in seeds)
        rows.append(f"<tr><td>{html.escape(claim.source)} {html.escape(claim.study)}</td>"
                    f"<td>{html.escape(claim.claim)}</td>{cells}</tr>")
    return (f'<table id="{VERDICTS_TABLE_ID}">\n<thead><tr><th>source</th><th>claim</th>{head}</tr>'
            "</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n")


def scorecard_html(findings: pd.DataFrame, source: str | Path) -> str:
    """A whole page of the scorecard ``findings`` (text cells, ``read_text_table``): the verdicts at a glance, then every row with its metric, value, rule and
    the numbers behind its verdict."""
    full = _html_table(findings, verdicts="verdict")
    body = (f"<p><code>{html.escape(str(source))}</code>: {len(findings)} rows, one per claim of the sources "
            "and training seed.</p>\n<h2>At a glance</h2>\n" + verdicts_html(findings)
            + "<h2>Every row</h2>\n" + full)
    return _page("The findings scorecard", body)
