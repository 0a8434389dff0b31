"""``hessian-spectra findings``: the findings scorecard (``results/tables/findings.tsv``): every source's claims
checked against this run's tables, a verdict each with its rule and numbers (torch-free).

Reads the study tables and per-run tables under ``--root`` (the workflow's working directory); a study not named
in ``--studies``, or whose tables are missing, gets verdict ``inconclusive`` ("study not run").
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=".", help="the run's working directory (holding results/)")
    parser.add_argument("--studies", nargs="*", default=[], help="the studies this config runs")
    parser.add_argument("--out", required=True, help="output TSV")


def run(args: argparse.Namespace) -> None:
    from hessian_spectra.findings import scorecard
    from hessian_spectra.tables import write_table

    table = scorecard(args.root, args.studies)
    write_table(table, args.out)
    for row in table.itertuples():
        log.info("%s (%s): %s: %s", row.study, row.source, row.claim, row.verdict)
    log.info("wrote %s", args.out)
