"""``hessian-spectra init-chain-rule``: the per-run chain-rule tracking, the table and the figures of study
init_chain_rule.

``track`` measures loss, ||H||_F and the Hessian chain-rule split at every checkpoint of one run (epoch 0 = init)
on its Hessian subset and writes one long table (run, sd, activation, epoch, step and ``chain_rule.COLUMNS``)
atomically at the end; a killed job resumes at its first unfinished epoch. ``table`` (torch-free) concatenates
the runs' ``track`` tables into the study's table; ``figures`` (torch-free) reads it and writes
``init_sd_{sd}.png`` for every init sd in it (sd formatted as ``f"{sd:g}"``), ``init_sd_all.png`` (every sd on
shared log axes) and ``chain_rule_terms.png``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hessian_spectra.commands import request_from_args
from hessian_spectra.runtime import add_walk_arguments, start_walk

log = logging.getLogger(__name__)

RUN_COLUMNS = ("run", "sd", "activation", "epoch", "step")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra init-chain-rule`` and its actions ``track``, ``table`` and ``figures``."""
    commands = parser.add_subparsers(dest="what", required=True)
    track = commands.add_parser("track", help="loss, ||H||_F and the chain-rule split at every checkpoint of a run")
    add_walk_arguments(track, max_steps=100, batch_size=1024)
    track.add_argument("--block", default="dense1.weight", help="parameter whose Hessian block is tracked")
    track.add_argument("--frobenius-probes", type=int, default=30, help="Gaussian probes per Frobenius norm (30)")
    track.add_argument("--top-k", type=int, default=1, help="top eigenvalues of H, G and H - G (1)")
    track.add_argument("--seed", type=int, default=0, help="seeds the probes (their own per term and checkpoint)")
    table = commands.add_parser("table", help="the runs' chain-rule tables as one")
    table.add_argument("--tables", nargs="+", required=True, help="chain-rule tables (`init-chain-rule track`)")
    table.add_argument("--out", required=True, help="output TSV")
    figures = commands.add_parser("figures", help="one figure per init sd, and the chain-rule terms")
    figures.add_argument("--table", required=True, help="the study's table (`init-chain-rule table`)")
    figures.add_argument("--out-dir", required=True, help="directory of the figures")


def _track(args: argparse.Namespace) -> None:
    """Track the chain-rule terms at every checkpoint of the run and write their long table to ``--out``."""
    device, _slot, run_cfg = start_walk(args)
    from hessian_spectra.chain_rule import COLUMNS, TrackingRequest, block_label, track_checkpoint
    from hessian_spectra.checkpoint import load_checkpoint, model_from_checkpoint
    from hessian_spectra.curvature import make_batches
    from hessian_spectra.data import load_subset
    from hessian_spectra.walk import file_digest, walk_checkpoints

    x, y, _meta = load_subset(args.subset)
    batches = make_batches(x.to(device), y.to(device), args.batch_size)
    request = request_from_args(TrackingRequest, args)
    options = run_cfg["model_options"]
    labels = {"run": run_cfg["key"], "sd": options.get("init_sd"), "activation": options.get("activation", "relu")}
    block = block_label(args.block)
    checked = []

    def measure(epoch: int, path: Path) -> list[dict]:
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt, map_location=device)
        step = int(ckpt["trainer"]["history"][-1]["steps"])
        found = track_checkpoint(
            model, batches, request, l2=run_cfg["l2"], check_determinism=not checked, epoch=epoch
        )
        checked.append(epoch)
        value = {(r["block"], r["quantity"]): r["value"] for r in found if r["index"] == 0}
        log.info(
            "epoch %d step %d: loss %.4g, %s ||H||_F %.4g ||G||_F %.4g ||H-G||_F %.4g; full ||H-G||_F/||G||_F %.3g",
            epoch,
            step,
            value[("full", "loss")],
            block,
            value[(block, "frobenius_H")],
            value[(block, "frobenius_G")],
            value[(block, "frobenius_H_minus_G")],
            value[("full", "frobenius_H_minus_G")] / value[("full", "frobenius_G")],
        )
        unconverged = [f"{r['block']} {r['quantity']}" for r in found if r["converged"] is False]
        if unconverged:
            log.warning(
                "epoch %d: relative residual above %g after at most %d Lanczos steps: %s",
                epoch,
                args.tol,
                args.max_steps,
                ", ".join(unconverged),
            )
        return [{**labels, "epoch": epoch, "step": step, **row} for row in found]

    settings = {"request": vars(request), "l2": run_cfg["l2"], "batch_size": args.batch_size,
                "subset": file_digest(args.subset)}
    walk_checkpoints(args.checkpoints, args.out, RUN_COLUMNS + COLUMNS, settings, measure)


def _figures(args: argparse.Namespace) -> None:
    from hessian_spectra.plots.common import save_figure, use_style
    from hessian_spectra.plots.init_chain_rule import (
        ALL_SDS_FIGURE,
        all_sds_figure,
        chain_rule_terms_figure,
        init_sd_figure,
        sd_label,
    )
    from hessian_spectra.studies.init_chain_rule.table import build_table

    table = build_table([args.table])
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


def run(args: argparse.Namespace) -> None:
    """``track``: one run's chain-rule terms along training; ``table``: concatenate the runs' tables into the
    study's table; ``figures``: draw it."""
    if args.what == "track":
        _track(args)
    elif args.what == "table":
        from hessian_spectra.studies.init_chain_rule.table import build_table
        from hessian_spectra.tables import write_table

        write_table(build_table(args.tables), args.out)
    else:
        _figures(args)
