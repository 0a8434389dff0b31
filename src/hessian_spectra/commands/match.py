"""``hessian-spectra match``: layer-vs-full spectral distances per run, layer and epoch, and each run's peak epoch.

Reads the npz files of ``hessian-spectra spectrum --layers --density-steps N`` (one per epoch, named
``epoch_NNNN.npz``) and writes one long-format TSV (``matching.COLUMNS``) atomically. Torch-free.
"""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)


def _peak(text: str) -> tuple[str, int]:
    label, sep, epoch = text.rpartition("=")
    if not sep or "/" not in label or not epoch.isdigit():
        raise argparse.ArgumentTypeError(f"expected MODEL/DATASET=EPOCH, got {text!r}")
    return label, int(epoch)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run",
        nargs="+",
        action="append",
        required=True,
        metavar=("RUN_JSON", "NPZ"),
        help="a run's run.json and its spectrum files epoch_NNNN.npz (repeat per run)",
    )
    parser.add_argument("--out", required=True, help="output table (TSV, long format)")
    parser.add_argument(
        "--eps",
        type=float,
        default=None,
        help="source metric: log(p + eps); default: the source's rule (zeros replaced by the smallest positive p)",
    )
    parser.add_argument(
        "--first-epoch", type=int, default=1, help="first epoch summed over and searched for the peak (1)"
    )
    parser.add_argument(
        "--peak-epoch",
        type=_peak,
        action="append",
        default=[],
        metavar="MODEL/DATASET=EPOCH",
        help="fix a run's peak epoch instead of the epoch of smallest summed distance (repeatable)",
    )


def run(args: argparse.Namespace) -> None:
    from hessian_spectra.atomic import atomic_write
    from hessian_spectra.matching import RunSpectra, epoch_of, match_table

    runs = []
    for run_json, *files in args.run:
        if not files:
            raise ValueError(f"--run {run_json}: no spectrum files given")
        with open(run_json) as handle:
            meta = json.load(handle)
        by_epoch = {epoch_of(path): path for path in files}
        if len(by_epoch) != len(files):
            raise ValueError(f"--run {run_json}: two spectrum files of the same epoch")
        runs.append(RunSpectra(meta["key"], meta["model"], meta["dataset"], by_epoch))
    overrides = dict(args.peak_epoch)
    table = match_table(runs, eps=args.eps, first_epoch=args.first_epoch, peak_overrides=overrides)
    for (key, metric), group in table.groupby(["run", "metric"]):
        log.info("%s %s: peak epoch %d (%s)", key, metric, group["peak_epoch"].iloc[0], group["peak_rule"].iloc[0])
    atomic_write(args.out, lambda tmp: table.to_csv(tmp, sep="\t", index=False))
