"""``hessian-spectra plot-init-chain-rule``: the figures of study init_chain_rule from its runs' chain-rule tables.

Writes ``init_sd_{sd}.png`` for every init sd in the tables (sd formatted as ``f"{sd:g}"``) and
``chain_rule_terms.png`` into ``--out-dir``, and optionally the tables concatenated (``--table``). Torch-free.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", nargs="+", required=True, help="chain-rule tables (hessian-spectra chain-rule)")
    parser.add_argument("--out-dir", required=True, help="directory of the figures")
    parser.add_argument("--table", default=None, help="also write the study's tables as one TSV here")


def run(args: argparse.Namespace) -> None:
    from hessian_spectra.atomic import atomic_write
    from hessian_spectra.plots.common import save_figure, use_style
    from hessian_spectra.plots.init_chain_rule import chain_rule_terms_figure, init_sd_figure, read_tables, sd_label

    table = read_tables(args.tables)
    if args.table:
        spelled = table.assign(converged=table["converged"].map({True: "true", False: "false"}))
        atomic_write(args.table, lambda tmp: spelled.to_csv(tmp, sep="\t", index=False, na_rep="nan"))
    use_style()
    out_dir = Path(args.out_dir)
    for sd in sorted(table["sd"].unique()):
        path = out_dir / f"init_sd_{sd_label(sd)}.png"
        save_figure(init_sd_figure(table, sd), path)
        log.info("wrote %s", path)
    path = out_dir / "chain_rule_terms.png"
    save_figure(chain_rule_terms_figure(table), path)
    log.info("wrote %s", path)
