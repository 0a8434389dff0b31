"""``hessian-spectra init-chain-rule``: the table and figures of study init_chain_rule (torch-free).

``table`` concatenates the runs' ``chain-rule`` tables into the study's table; ``figures`` reads it and writes
``init_sd_{sd}.png`` for every init sd in it (sd formatted as ``f"{sd:g}"``), ``init_sd_all.png`` (every sd on
shared log axes) and ``chain_rule_terms.png``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra init-chain-rule`` and its actions ``table`` and ``figures``."""
    commands = parser.add_subparsers(dest="what", required=True)
    table = commands.add_parser("table", help="the runs' chain-rule tables as one")
    table.add_argument("--tables", nargs="+", required=True, help="chain-rule tables (hessian-spectra chain-rule)")
    table.add_argument("--out", required=True, help="output TSV")
    figures = commands.add_parser("figures", help="one figure per init sd, and the chain-rule terms")
    figures.add_argument("--table", required=True, help="the study's table (`init-chain-rule table`)")
    figures.add_argument("--out-dir", required=True, help="directory of the figures")


def run(args: argparse.Namespace) -> None:
    """``table``: concatenate the runs' chain-rule tables into the study's table; ``figures``: draw it."""
    from hessian_spectra.plots.init_chain_rule import read_tables
    from hessian_spectra.tables import write_table

    if args.what == "table":
        write_table(read_tables(args.tables), args.out)
        return
    from hessian_spectra.plots.common import save_figure, use_style
    from hessian_spectra.plots.init_chain_rule import (
        ALL_SDS_FIGURE,
        all_sds_figure,
        chain_rule_terms_figure,
        init_sd_figure,
        sd_label,
    )

    table = read_tables([args.table])
    use_style()
    out_dir = Path(args.out_dir)
    for sd in sorted(table["sd"].unique()):
        path = out_dir / f"init_sd_{sd_label(sd)}.png"
        save_figure(init_sd_figure(table, sd), path)
        log.info("wrote %s", path)
    path = out_dir / ALL_SDS_FIGURE
    save_figure(all_sds_figure(table), path)
    log.info("wrote %s", path)
    path = out_dir / "chain_rule_terms.png"
    save_figure(chain_rule_terms_figure(table), path)
    log.info("wrote %s", path)
