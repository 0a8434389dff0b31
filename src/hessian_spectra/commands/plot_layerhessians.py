"""``hessian-spectra plot-layerhessians``: the LayerHessians figures (per-epoch layer vs full densities, matching).

``epochwise``: ``training_eigvals_epochwise_*.png`` of one run and layer from its spectrum files;
``match-distros``: ``match_distros_{wasserstein,peak}.png`` from the ``match`` table. Torch-free.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    figures = parser.add_subparsers(dest="figure", required=True)
    epochwise = figures.add_parser("epochwise", help="one run's layer vs full density after every epoch")
    epochwise.add_argument("--run-json", required=True, help="the run's run.json (model, dataset)")
    epochwise.add_argument("--spectra", nargs="+", required=True, help="spectrum files epoch_NNNN.npz")
    epochwise.add_argument("--layer", type=int, required=True, help="layer block, numbered from 1 in forward order")
    epochwise.add_argument("--out", required=True, help="output PNG")
    match = figures.add_parser("match-distros", help="layer-vs-full distance against relative depth")
    match.add_argument("--table", required=True, help="the `hessian-spectra match` table")
    match.add_argument("--kind", choices=["wasserstein", "peak"], required=True, help="summed over epochs or at peak")
    match.add_argument("--out", required=True, help="output PNG")


def _epochwise(args: argparse.Namespace) -> None:
    from hessian_spectra.matching import epoch_of, layer_blocks_of, load_spectra
    from hessian_spectra.plots.common import save_figure, use_style
    from hessian_spectra.plots.layerhessians import epochwise_figure

    with open(args.run_json) as handle:
        run = json.load(handle)
    spectra = {epoch_of(path): load_spectra(path) for path in args.spectra}
    blocks = layer_blocks_of(spectra[min(spectra)])
    if not 1 <= args.layer <= len(blocks):
        raise ValueError(f"--layer {args.layer}: {run['model']} has layers 1..{len(blocks)}")
    block = blocks[args.layer - 1]
    title = f"{run['model']} on {run['dataset']}: layer {args.layer}/{len(blocks)} ({block}) vs full Hessian"
    use_style()
    save_figure(epochwise_figure(spectra, block, title), args.out)


def _match_distros(args: argparse.Namespace) -> None:
    import pandas as pd

    from hessian_spectra.plots.common import save_figure, use_style
    from hessian_spectra.plots.layerhessians import match_distros_figure

    table = pd.read_csv(args.table, sep="\t")
    use_style()
    save_figure(match_distros_figure(table, args.kind), args.out)


def run(args: argparse.Namespace) -> None:
    if args.figure == "epochwise":
        _epochwise(args)
    else:
        _match_distros(args)
