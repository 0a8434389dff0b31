"""``hessian-spectra study``: build the table or draw a figure of a study that defines them itself (its ``Study``'s
``build_table`` and ``draw``), such as one a config adds with ``study_modules``; the built-in studies have commands
of their own.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``table`` (run records and per-run tables -> the study table) and ``figure`` (the table -> one figure)."""
    parser.add_argument("what", choices=["table", "figure"])
    parser.add_argument("--study", required=True, help="the study's name")
    parser.add_argument("--modules", nargs="*", default=[], help="the config's study_modules")
    parser.add_argument("--runs", nargs="*", default=[], help="table: every run's run.json")
    parser.add_argument("--tables", nargs="*", default=[], help="table: the per-run tables, in the order of --runs")
    parser.add_argument("--table", help="figure: the study table")
    parser.add_argument("--out", required=True, help="the table (TSV) or the figure (PNG)")


def run(args: argparse.Namespace) -> None:
    """Build the study's table or draw its figure named by ``--out``'s file name, written atomically."""
    from hessian_spectra.studies import registry
    from hessian_spectra.tables import load_run, read_table, write_table

    studies = registry(args.modules)
    if args.study not in studies:
        raise ValueError(f"--study {args.study}: no such study; known: {', '.join(studies)}")
    study = studies[args.study]
    hook = study.build_table if args.what == "table" else study.draw
    if hook is None:
        raise ValueError(f"study {study.name} has no {'build_table' if args.what == 'table' else 'draw'}; it has a "
                         "command of its own")
    if args.what == "table":
        write_table(hook([load_run(path) for path in args.runs], args.tables), args.out)
    else:
        from hessian_spectra.plots.common import save_figure

        save_figure(hook(read_table(args.table), Path(args.out).name), args.out)
    log.info("wrote %s", args.out)
