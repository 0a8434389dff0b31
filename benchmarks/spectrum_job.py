"""Section 6: the default run's LeNet per-epoch layerhessians spectrum jobs, cached against forward-over-reverse
products: each job's own command (from ``snakemake -n -p``) run in this process with each product kind."""

from __future__ import annotations

import contextlib
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.fixtures import REPO
from benchmarks.report import Section, Target, table
from benchmarks.workflow_cost import JOB_STARTUP, startup_seconds
from hessian_spectra.cli import command_parser

TARGET_SAVING = 0.35  # the job's time, start-up included
TABLES = "results/tables/layerhessians/runs/lenet/*/*/*/*/layer_spectra/epoch_*.tsv"
SHELL_COMMAND = re.compile(r"^Shell command: (hessian-spectra spectrum .*?)(?: > \S+ 2>&1)?$", re.M)


def job_commands(workdir: Path) -> list[list[str]]:
    """The argv (after ``hessian-spectra``) of every LeNet spectrum job of the run in ``workdir``, epoch order."""
    targets = sorted(str(p.relative_to(workdir)) for p in workdir.glob(TABLES))
    if not targets:
        return []
    planned = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "-n",
            "-p",
            "--forcerun",
            *targets,
            "--until",
            *targets,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if planned.returncode:
        raise RuntimeError(f"snakemake -n in {workdir} failed: {planned.stderr.strip().splitlines()[-1:]}")
    commands = [shlex.split(command)[2:] for command in SHELL_COMMAND.findall(planned.stdout + planned.stderr)]
    return sorted(commands, key=lambda argv: argv[argv.index("--checkpoint") + 1])


def run_job(argv: list[str], workdir: Path, out: Path, mode: str) -> tuple[float, pd.DataFrame]:
    """Seconds of one job's work in this process (start-up excluded) with ``mode`` products, and its table."""
    parser, command = command_parser("spectrum", "")
    args = parser.parse_args(argv)
    args.out, args.npz, args.products = str(out / "t.tsv"), str(out / "t.npz"), mode
    threads = torch.get_num_threads()  # the job sets its own; the harness's other sections keep theirs
    try:
        with contextlib.chdir(workdir):  # the job's paths are relative to the workflow's directory
            start = time.perf_counter()
            command.run(args)
            seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return seconds, pd.read_csv(out / "t.tsv", sep="\t")


def spectrum_job_section(workdir: Path, rounds: int) -> Section:
    """Median work seconds per epoch's job in both modes (interleaved), the job totals with start-up, equality."""
    section = Section("6. The layerhessians per-epoch spectrum job (LeNet, the default run)")
    commands = job_commands(workdir)
    if not commands:
        section.lines.append(f"No LeNet layer spectra under {workdir}/results: run the default workflow first.")
        return section
    job_startup = startup_seconds(rounds)[0][JOB_STARTUP]
    modes = ("forward", "cached")
    times: dict[str, list[list[float]]] = {mode: [[] for _ in commands] for mode in modes}
    gap = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for index, argv in enumerate(commands):
                frames = {}
                for mode in modes:
                    seconds, frames[mode] = run_job(argv, workdir, Path(tmp), mode)
                    times[mode][index].append(seconds)
                a, b = frames["cached"]["value"], frames["forward"]["value"]
                gap = max(gap, float(((a - b).abs() / b.abs().clip(lower=1e-30)).max()))
    work = {mode: [statistics.median(t) for t in times[mode]] for mode in modes}
    rows = [
        [
            f"epoch {index}",
            f"{work['forward'][index]:.2f}",
            f"{work['cached'][index]:.2f}",
            f"{1 - work['cached'][index] / work['forward'][index]:.0%}",
        ]
        for index in range(len(commands))
    ]
    jobs = {mode: sum(work[mode]) + len(commands) * job_startup for mode in modes}
    saving = 1 - jobs["cached"] / jobs["forward"]
    rows.append(
        [
            "**all, work only**",
            f"{sum(work['forward']):.2f}",
            f"{sum(work['cached']):.2f}",
            f"{1 - sum(work['cached']) / sum(work['forward']):.0%}",
        ]
    )
    rows.append(
        [
            f"**all, with {job_startup:.2f} s start-up per job**",
            f"{jobs['forward']:.2f}",
            f"{jobs['cached']:.2f}",
            f"{saving:.0%}",
        ]
    )
    section.lines += [
        f"Each job's command as `snakemake -n -p` plans it, run in this process with its own `--threads` (median "
        f'of {rounds} interleaved rounds); the start-up a job pays before it computes is section 5\'s "{JOB_STARTUP}".',
        "",
        *table(["job", "forward-over-reverse s", "cached s", "saving"], rows),
        f"Largest relative difference between the two modes' table values: {gap:.1e}.",
    ]
    section.targets.append(Target("layerhessians LeNet spectrum jobs, time saved", saving, TARGET_SAVING, "min", ""))
    return section
