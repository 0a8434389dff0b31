"""``hessian-spectra layerhessians``: the table and figures of study layerhessians (torch-free).

``table``: layer-vs-full spectral distances per run, layer and epoch, and each run's peak epoch, from the npz files
of ``hessian-spectra spectrum --layers --density-steps N`` (one per epoch, ``epoch_NNNN.npz``), as one long TSV
(``studies.layerhessians.table.COLUMNS``), and each layer's distance against relative depth
(``matching.layer_profiles``); ``epochwise``: ``training_eigvals_epochwise_*.png`` of one model and dataset (every
seed's run in each), one per layer block, from the runs' spectrum files; ``match-distros``:
``match_distros_{wasserstein,peak}.png`` from the ``table`` profiles table.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def _peak(text: str) -> tuple[str, int]:
    label, sep, epoch = text.rpartition("=")
    if not sep or "/" not in label or not epoch.isdigit():
        raise argparse.ArgumentTypeError(f"expected MODEL/DATASET=EPOCH, got {text!r}")
    return label, int(epoch)


def _add_runs(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--run", nargs="+", action="append", required=True, metavar=("RUN_JSON", "NPZ"), help=what)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra layerhessians`` and its actions ``table``, ``epochwise`` and ``match-distros``."""
    commands = parser.add_subparsers(dest="what", required=True)
    table = commands.add_parser("table", help="layer-vs-full distances and peak epochs (the study's table)")
    _add_runs(table, "a run's run.json and its spectrum files epoch_NNNN.npz (repeat per run)")
    table.add_argument("--out", required=True, help="output table (TSV, long format)")
    table.add_argument("--profiles", required=True, help="output table: each layer's distance vs relative depth")
    table.add_argument(
        "--eps",
        type=float,
        default=None,
        help="source metric: log(p + eps); default: the source's rule (zeros replaced by the smallest positive p)",
    )
    table.add_argument("--first-epoch", type=int, default=1, help="first epoch summed over and searched for the peak")
    table.add_argument(
        "--peak-epoch",
        type=_peak,
        action="append",
        default=[],
        metavar="MODEL/DATASET=EPOCH",
        help="fix a run's peak epoch instead of the epoch of smallest summed distance (repeatable)",
    )
    epochwise = commands.add_parser("epochwise", help="layer vs full densities after every epoch, every seed")
    _add_runs(
        epochwise,
        "a run's run.json and its spectrum files epoch_NNNN.npz (repeat per seed; the runs differ only by seed)",
    )
    epochwise.add_argument(
        "--out", nargs="+", required=True, help="one PNG per layer block, in forward order (layer 1 first)"
    )
    distros = commands.add_parser("match-distros", help="layer-vs-full distance against relative depth")
    distros.add_argument("--profiles", required=True, help="the `layerhessians table --profiles` table")
    distros.add_argument("--kind", choices=["wasserstein", "peak"], required=True, help="summed over epochs or at peak")
    distros.add_argument("--out", required=True, help="output PNG")


def _runs(args: argparse.Namespace) -> list[tuple[dict, dict[int, str]]]:
    """Every ``--run``: its run.json and ``epoch -> spectrum file``."""
    from hessian_spectra.matching import epoch_of
    from hessian_spectra.tables import load_run

    runs = []
    for run_json, *files in args.run:
        if not files:
            raise ValueError(f"--run {run_json}: no spectrum files given")
        meta = load_run(run_json)
        by_epoch = {epoch_of(path): path for path in files}
        if len(by_epoch) != len(files):
            raise ValueError(f"--run {run_json}: two spectrum files of the same epoch")
        runs.append((meta, by_epoch))
    return runs


def _table(args: argparse.Namespace) -> None:
    from hessian_spectra.matching import layer_profiles
    from hessian_spectra.studies.layerhessians.table import RunSpectra, build_table
    from hessian_spectra.tables import write_table

    runs = [RunSpectra(meta["key"], meta["seed"], meta["model"], meta["dataset"], files) for meta, files in _runs(args)]
    table = build_table(runs, eps=args.eps, first_epoch=args.first_epoch, peak_overrides=dict(args.peak_epoch))
    for (key, metric), group in table.groupby(["run", "metric"]):
        log.info("%s %s: peak epoch %d (%s)", key, metric, group["peak_epoch"].iloc[0], group["peak_rule"].iloc[0])
    write_table(table, args.out)
    write_table(layer_profiles(table), args.profiles)


def _epochwise(args: argparse.Namespace) -> None:
    from hessian_spectra.layout import without_seed
    from hessian_spectra.matching import layer_blocks_of, load_spectra
    from hessian_spectra.plots.common import save_figure, use_style
    from hessian_spectra.plots.layerhessians import epochwise_figure

    runs = _runs(args)
    configs = {without_seed(meta["key"]) for meta, _ in runs}
    if len(configs) != 1:
        raise ValueError(f"--run: the runs differ in more than their seed ({', '.join(sorted(configs))})")
    spectra = {meta["seed"]: {epoch: load_spectra(path) for epoch, path in files.items()} for meta, files in runs}
    if len(spectra) != len(runs):
        raise ValueError("--run: two runs of the same seed")
    run = runs[0][0]
    by_epoch = spectra[run["seed"]]
    blocks = layer_blocks_of(by_epoch[min(by_epoch)])
    if len(args.out) != len(blocks):
        raise ValueError(f"--out: {len(args.out)} files for the {len(blocks)} layer blocks of {run['model']}")
    use_style()
    for layer, (block, out) in enumerate(zip(blocks, args.out), start=1):
        title = f"{run['model']} on {run['dataset']}: layer {layer}/{len(blocks)} ({block}) vs full Hessian"
        save_figure(epochwise_figure(spectra, block, title), out)


def _match_distros(args: argparse.Namespace) -> None:
    from hessian_spectra.plots.common import save_figure, use_style
    from hessian_spectra.plots.layerhessians import match_distros_figure
    from hessian_spectra.tables import read_table

    use_style()
    save_figure(match_distros_figure(read_table(args.profiles), args.kind), args.out)


def run(args: argparse.Namespace) -> None:
    """Run the chosen action: the matching table, the epochwise figures or the matched distributions' figure."""
    {"table": _table, "epochwise": _epochwise, "match-distros": _match_distros}[args.what](args)
