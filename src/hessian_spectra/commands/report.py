"""``hessian-spectra report``: the pages of the workflow report besides the figures (torch-free).

``table`` writes a study table as an HTML page; ``scorecard`` writes the findings scorecard as an HTML page, the
verdicts at a glance as an HTML table (the report's start page embeds it) and as a picture.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra report`` and its actions ``table`` and ``scorecard``."""
    commands = parser.add_subparsers(dest="what", required=True)
    table = commands.add_parser("table", help="a study table (TSV or CSV) as an HTML page")
    table.add_argument("--table", required=True, help="the study's table")
    table.add_argument("--out", required=True, help="output HTML page")
    scorecard = commands.add_parser("scorecard", help="the findings scorecard as HTML pages and a picture")
    scorecard.add_argument("--findings", required=True, help="the scorecard (hessian-spectra findings)")
    scorecard.add_argument("--page", required=True, help="output HTML page of the whole scorecard")
    scorecard.add_argument("--verdicts", required=True, help="output HTML table of the verdicts at a glance")
    scorecard.add_argument("--figure", required=True, help="output PNG of the verdicts")


def _write(path: str, text: str) -> None:
    from hessian_spectra.atomic import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    log.info("wrote %s", path)


def run(args: argparse.Namespace) -> None:
    """``table``: a study table as an HTML page; ``scorecard``: the scorecard's page, its verdicts table and
    picture."""
    from hessian_spectra.report_pages import read_text_table, scorecard_html, table_html, verdicts_html

    if args.what == "table":
        if not Path(args.table).is_file():
            raise FileNotFoundError(f"--table {args.table}: table missing (run Snakemake, which makes it)")
        _write(args.out, table_html(args.table))
        return
    from hessian_spectra.findings import COLUMNS
    from hessian_spectra.plots.verdicts import verdicts_figure

    if not Path(args.findings).is_file():
        raise FileNotFoundError(f"--findings {args.findings}: scorecard missing (run Snakemake, which makes it)")
    findings = read_text_table(args.findings)
    missing = [column for column in COLUMNS if column not in findings.columns]
    if missing or findings.empty:
        raise ValueError(f"--findings {args.findings}: not a findings scorecard (no rows, or no column "
                         f"{', '.join(missing)}); rerun Snakemake with --forcerun {args.findings}")
    verdicts_figure(findings, args.figure)
    log.info("wrote %s", args.figure)
    _write(args.verdicts, verdicts_html(findings))
    _write(args.page, scorecard_html(findings, args.findings))
