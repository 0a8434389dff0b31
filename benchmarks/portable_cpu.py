"""Portable CPU bits (``portable_cpu``): the SHA-256 of a finished run's final weights on this processor, and what
pinning the kernel choices costs on the default run.

    python benchmarks/portable_cpu.py digests --workdir DIR [--configfile tests/configs/tiny.yaml [OVERLAY]]
    python benchmarks/portable_cpu.py cost --scratch DIR [--rounds 2] [--jobs 3]
    python benchmarks/portable_cpu.py breakdown --workdir DIR [--jobs 2]

``digests`` prints this machine's row of the table in ``benchmarks/PORTABLE_CPU.md`` (and every run's digest);
``cost`` runs the default config once pinned and once not, then reruns its heaviest jobs alternately pinned and
not, and ``breakdown`` reruns them with each pinned variable alone; both print CPU seconds (user + sys) with the
load average.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hessian_spectra import layout  # noqa: E402
from hessian_spectra.portable import PINNED, THREADS_VARIABLE, shell_exports  # noqa: E402
from hessian_spectra.runs import load_yaml, plan_runs, with_defaults  # noqa: E402

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def processor() -> str:
    """``lscpu``'s model name (the processor's brand string)."""
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def weights_digest(path: Path) -> str:
    """SHA-256 of a checkpoint's weights and buffers (name, dtype, shape and bytes of each, in order): the file's own
    bytes also hold training's wall times, which differ between runs."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in torch.load(path, map_location="cpu", weights_only=True)["state_dict"].items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def digests(args: argparse.Namespace) -> None:
    """Print this processor's row of the digest table and every run's final-weights digest (``digests``)."""
    import torch

    config = with_defaults({key: value for path in args.configfile for key, value in load_yaml(path).items()}, SCHEMA)
    runs = plan_runs(config, SCHEMA)
    rows = {key: weights_digest(Path(args.workdir) / layout.run_files(key).checkpoint(run["epochs"]))
            for key, run in sorted(runs.items())}
    combined = hashlib.sha256("".join(f"{key} {digest}\n" for key, digest in rows.items()).encode()).hexdigest()
    mode = "pinned" if config["portable_cpu"] else "not pinned"
    print(f"| {processor()} | torch {torch.__version__} | {mode}, {config['threads']} thread(s) | {len(rows)} "
          f"| `{combined}` |")
    print()
    for key, digest in rows.items():
        print(f"| {key} | `{digest}` |")


def cpu_seconds() -> float:
    """CPU seconds (user + sys) of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    """The load average over 1, 5 and 15 minutes, as ``a/b/c``."""
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def measured(command: list[str], **kwargs) -> tuple[float, float, str]:
    """(CPU seconds of the command and everything it ran, wall seconds, load average before it)."""
    before, start, at = cpu_seconds(), time.perf_counter(), load()
    subprocess.run(command, check=True, capture_output=True, **kwargs)
    return cpu_seconds() - before, time.perf_counter() - start, at


def overlay(path: Path, portable: bool) -> Path:
    """A config file setting only ``portable_cpu`` (Snakemake's ``--config`` passes ``false`` as a string)."""
    path.write_text(f"portable_cpu: {str(portable).lower()}\n")
    return path


def default_run(workdir: Path, portable: bool) -> tuple[float, float, str]:
    """Run the default config in ``workdir``, pinned or not; its CPU seconds, wall seconds and load before."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--cores", "2", "--configfile", str(REPO / "config.yaml"), str(overlay(workdir / "cpu.yaml", portable))]
    return measured(command)


def heaviest_jobs(workdir: Path, count: int, configfile: Path = REPO / "config.yaml") -> list[tuple[str, float]]:
    """(shell command, CPU seconds) of the ``count`` jobs of a finished run of ``configfile`` that took the most CPU
    time."""
    import pandas as pd

    benchmarks = workdir / Path(layout.benchmark("job")).parent  # a job's benchmark and log share its name
    times = {}
    for path in benchmarks.rglob("*.tsv"):
        log = layout.log(path.relative_to(benchmarks).with_suffix("").as_posix())
        times[log] = float(pd.read_csv(path, sep="\t")["cpu_time"].iloc[0])
    summary = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                              "--directory", str(workdir), "--detailed-summary", "--configfile", str(configfile)],
                             capture_output=True, text=True,
                             check=True).stdout.splitlines()
    start = next(i for i, line in enumerate(summary) if line.startswith("output_file\t"))
    commands = {}
    for line in summary[start + 1 :]:
        _output, _date, _rule, logs, _inputs, shellcmd, *_ = line.split("\t")
        commands[logs] = shellcmd
    heaviest = sorted(times, key=times.get, reverse=True)[:count]
    return [(commands[log], times[log]) for log in heaviest]


def rerun(workdir: Path, shellcmd: str, portable: bool, threads: int, only: str | None = None
          ) -> tuple[float, float, str]:
    """A job's shell command run again as Snakemake runs it, with the pinned settings or without them, or with the
    one pinned variable ``only`` (a training job from scratch: without its store it would only republish)."""
    trained = re.search(r"hessian-spectra train .*--out-dir \$\(dirname (\S+)\)", shellcmd)
    if trained:
        shutil.rmtree(workdir / Path(trained.group(1)).parent / ".checkpoint-store", ignore_errors=True)
    environment = {k: v for k, v in os.environ.items() if k not in (*PINNED, THREADS_VARIABLE)}
    environment.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    exports = shell_exports({"portable_cpu": portable, "threads": threads})
    if only is not None:
        exports = f"export {only}={PINNED[only]}; "
    script = f'set -euo pipefail; {exports}hessian-spectra() {{ {sys.executable} -m hessian_spectra "$@"; }}; {shellcmd}'
    return measured(["bash", "-c", script], cwd=workdir, env=environment)


def breakdown(args: argparse.Namespace) -> None:
    """CPU seconds of the heaviest jobs of a finished default run with each pinned variable alone."""
    workdir = Path(args.workdir)
    threads = with_defaults(load_yaml(REPO / "config.yaml"), SCHEMA)["threads"]
    print(f"{processor()}, {os.cpu_count()} CPUs\n")
    print("| job | none | " + " | ".join(f"`{name}` alone" for name in PINNED) + " | all pinned | load before |")
    print("| --- " * (len(PINNED) + 4) + "|")
    for shellcmd, _ in heaviest_jobs(workdir, args.jobs):
        name = shellcmd.split(" > ", 1)[-1].split(" ", 1)[0]
        at = load()
        cpu = [rerun(workdir, shellcmd, False, threads)[0]]
        cpu += [rerun(workdir, shellcmd, False, threads, only)[0] for only in PINNED]
        cpu.append(rerun(workdir, shellcmd, True, threads)[0])
        print(f"| `{name}` | " + " | ".join(f"{value:.1f}" for value in cpu) + f" | {at} |", flush=True)


def cost(args: argparse.Namespace) -> None:
    """Print the default run's CPU time pinned and not, then its heaviest jobs rerun alternately (``cost``)."""
    scratch = Path(args.scratch)
    threads = with_defaults(load_yaml(REPO / "config.yaml"), SCHEMA)["threads"]
    print(f"{processor()}, {os.cpu_count()} CPUs; torch threads per job: {threads}\n")
    print("| default run (`snakemake --cores 2`) | CPU s (user+sys) | wall s | load average before (1/5/15 min) |")
    print("| --- | --- | --- | --- |")
    for portable in (True, False):
        cpu, wall, at = default_run(scratch / ("pinned" if portable else "unpinned"), portable)
        print(f"| {'pinned' if portable else 'not pinned'} | {cpu:.1f} | {wall:.1f} | {at} |", flush=True)
    print("\n| job (heaviest of the pinned run) | round | pinned CPU s | not pinned CPU s | ratio | load before |")
    print("| --- | --- | --- | --- | --- | --- |")
    for shellcmd, _ in heaviest_jobs(scratch / "pinned", args.jobs):
        name = shellcmd.split(" > ", 1)[-1].split(" ", 1)[0]
        for round_ in range(1, args.rounds + 1):
            first = round_ % 2 == 1  # alternate which mode runs first
            results = {}
            for portable in (first, not first):
                results[portable] = rerun(scratch / "unpinned", shellcmd, portable, threads)
            pinned, unpinned = results[True][0], results[False][0]
            print(f"| `{name}` | {round_} | {pinned:.1f} | {unpinned:.1f} | {pinned / unpinned:.2f} | "
                  f"{results[first][2]} |", flush=True)


def main() -> None:
    """Run the subcommand named on the command line (``digests``, ``cost`` or ``breakdown``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    digest = commands.add_parser("digests", help="this processor's row of the digest table")
    digest.add_argument("--workdir", required=True, help="a directory where the config has run to the end")
    digest.add_argument("--configfile", nargs="+", default=[str(REPO / "tests" / "configs" / "tiny.yaml")],
                        help="the run's config files (a later file's top-level keys win)")
    measure = commands.add_parser("cost", help="CPU time of the default run, pinned vs not")
    measure.add_argument("--scratch", required=True, help="an empty directory for the two runs")
    measure.add_argument("--rounds", type=int, default=2, help="interleaved reruns of each heaviest job")
    measure.add_argument("--jobs", type=int, default=3, help="how many of the heaviest jobs to rerun")
    each = commands.add_parser("breakdown", help="the heaviest jobs with each pinned variable alone")
    each.add_argument("--workdir", required=True, help="a directory where the default run has run to the end")
    each.add_argument("--jobs", type=int, default=2, help="how many of the heaviest jobs to rerun")
    args = parser.parse_args()
    {"digests": digests, "cost": cost, "breakdown": breakdown}[args.command](args)


if __name__ == "__main__":
    main()
