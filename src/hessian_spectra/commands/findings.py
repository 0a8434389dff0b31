"""``hessian-spectra findings``: the findings scorecard (``results/tables/findings.tsv``): every source's claims
checked against this config's tables, a verdict each with its rule and numbers (torch-free).

Reads only the files of the config's plan (``--plan``, which the workflow writes): each planned run's record, history
and curvature tables, and the config's study tables; a study the plan does not run gets verdict ``inconclusive``
("study not run"). To recompute it from a finished run, let Snakemake pass the plan:
``snakemake --cores 1 --forcerun findings results/tables/findings.tsv``.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra findings``: the config's plan and the scorecard's path."""
    parser.add_argument(
        "--plan", required=True,
        help="JSON {config: NAME, runs: {STUDY: [{key: RUN_KEY, epochs: N}, ...]}, modules: [FILE, ...]}: the config's "
             "name, planned runs and study_modules",
    )
    parser.add_argument("--out", required=True, help="output TSV")


def parse_plan(text: str):
    """The ``--plan`` argument as ``Evidence``; a malformed plan or an unknown study raises ``ValueError``."""
    import json

    from hessian_spectra.evidence import Evidence

    try:
        return Evidence.from_json(text)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"--plan: not a plan of runs ({type(err).__name__}: {err}); the workflow's findings rule "
                         "writes it") from None
    except ValueError as err:
        raise ValueError(f"--plan: {err}") from None


def run(args: argparse.Namespace) -> None:
    """Judge every claim against the plan's tables, write the scorecard to ``--out`` and log each verdict."""
    from hessian_spectra.findings import scorecard
    from hessian_spectra.tables import write_table

    table = scorecard(parse_plan(args.plan))
    write_table(table, args.out)
    for row in table.itertuples():
        log.info("%s (%s): %s: %s", row.study, row.source, row.claim, row.verdict)
    log.info("wrote %s", args.out)
