"""``hessian-spectra hessianflow``: the per-run dominant eigenvalues, the table and the figures of study
`hessianflow`.

``eigen`` estimates the dominant Hessian eigenvalue at every checkpoint of one run, twice on the run's Hessian
subset: power iteration with HessianFlow's settings (what the source reports) and Lanczos top-1 with its Ritz
residual and convergence flag; one table (the ``spectrum`` command's columns, quantities ``power_eigenvalue`` and
``eigenvalue``), written atomically once every checkpoint is done; a killed job resumes at its first unfinished
epoch. ``table`` and ``figures`` (torch-free) read every run's ``run.json`` and history, its ``eigen`` table and its
final trace and density (``spectrum`` at the final checkpoint: a table and an npz), all lists in one order:
``table`` writes the study's table (``dominant_eigenvalue.tsv``: the dominant eigenvalues per run and epoch, the
final traces per run), ``figures`` the study's three figures.
"""

from __future__ import annotations

import argparse
import logging

from hessian_spectra.commands import request_from_args
from hessian_spectra.runtime import add_walk_arguments, start_walk

log = logging.getLogger(__name__)


def _add_run_tables(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, help="run.json of every run of the study")
    parser.add_argument("--histories", nargs="+", required=True, help="their history.tsv, same order")
    parser.add_argument("--eigen", nargs="+", required=True, help="their `hessianflow eigen` tables, same order")
    parser.add_argument("--final", nargs="+", required=True, help="their final trace/density tables, same order")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra hessianflow`` and its actions ``eigen``, ``table`` and ``figures``."""
    commands = parser.add_subparsers(dest="what", required=True)
    eigen = commands.add_parser("eigen", help="dominant Hessian eigenvalue at every checkpoint of a run")
    add_walk_arguments(eigen, max_steps=100, batch_size=200)
    eigen.add_argument("--power-iters", type=int, default=10, help="power iterations (source: 10)")
    eigen.add_argument("--power-tol", type=float, default=1e-2, help="power iteration relative tolerance (1e-2)")
    eigen.add_argument("--seed", type=int, default=0, help="seeds the start vectors (0)")
    table = commands.add_parser("table", help="dominant eigenvalue per run and epoch, final trace per run")
    _add_run_tables(table)
    table.add_argument("--out", required=True, help="output TSV")
    figures = commands.add_parser("figures", help="dominant eigenvalue, ABSA schedule and final density figures")
    _add_run_tables(figures)
    figures.add_argument("--densities", nargs="+", required=True, help="their final density npz files, same order")
    figures.add_argument("--dominant-eigenvalue", required=True, help="output PNG: lambda_1 vs epoch")
    figures.add_argument("--absa-schedule", required=True, help="output PNG: batch size, lr, test accuracy vs epoch")
    figures.add_argument("--esd-final", required=True, help="output PNG: spectral density at the final checkpoint")


def _eigen(args: argparse.Namespace) -> None:
    """Estimate the dominant eigenvalue at every checkpoint of the run and write the table to ``--out``."""
    device, _slot, config = start_walk(args)
    from hessian_spectra.spectrum import SpectrumRequest, checkpoint_spectra

    request = request_from_args(SpectrumRequest, args, top_k=1)
    checkpoint_spectra(args.checkpoints, args.subset, request, args.batch_size, device, args.out)
    log.info("%s: dominant eigenvalue of %d checkpoints -> %s", config["key"], len(args.checkpoints), args.out)


def _figures(args: argparse.Namespace) -> None:
    from hessian_spectra.plots.common import save_figure
    from hessian_spectra.plots.hessianflow import absa_schedule_figure, dominant_eigenvalue_figure, esd_final_figure
    from hessian_spectra.studies.hessianflow.table import collect

    eigen, history, density, trace = collect(args.runs, args.histories, args.eigen, args.final, args.densities)
    save_figure(dominant_eigenvalue_figure(eigen, history), args.dominant_eigenvalue)
    save_figure(absa_schedule_figure(history), args.absa_schedule)
    save_figure(esd_final_figure(density, trace), args.esd_final)


def run(args: argparse.Namespace) -> None:
    """``eigen``: one run's dominant eigenvalues along training; ``table``: write the study's table; ``figures``:
    draw the dominant-eigenvalue, ABSA-schedule and final-ESD figures from the runs' tables."""
    if args.what == "eigen":
        _eigen(args)
    elif args.what == "table":
        from hessian_spectra.studies.hessianflow.table import build_table
        from hessian_spectra.tables import write_table

        write_table(build_table(args.runs, args.histories, args.eigen, args.final), args.out)
    else:
        _figures(args)
