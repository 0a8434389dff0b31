"""Run the benchmark harness: print a markdown report and write it to ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/run.py [--smoke] [--device cpu|cuda] [--threads N] [--out PATH]

Sections: 1 product cost, 2 top-5 eigenvalues at equal accuracy, 3 densities, 4 scaling, 5 the default run,
6 the default run's LeNet layer-spectrum jobs with cached and forward-over-reverse products.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the memory profiler's kineto chatter

import torch  # noqa: E402

from benchmarks.density import density_section  # noqa: E402
from benchmarks.eigen import eigen_section  # noqa: E402
from benchmarks.fixtures import REPO, num_params, trained_model  # noqa: E402
from benchmarks.peers import PATCHES  # noqa: E402
from benchmarks.products import products_section  # noqa: E402
from benchmarks.report import Section, header, table, targets_table  # noqa: E402
from benchmarks.scaling import scaling_section  # noqa: E402
from benchmarks.sizes import FULL, SMOKE, Sizes  # noqa: E402
from benchmarks.spectrum_job import spectrum_job_section  # noqa: E402
from benchmarks.workflow_cost import workflow_section  # noqa: E402

log = logging.getLogger("benchmarks")
SECTIONS = (1, 2, 3, 4, 5, 6)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``benchmarks/run.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models and sizes: checks every code path quickly")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument(
        "--cache-dir", type=Path, default=REPO / "benchmarks" / ".cache", help="trained checkpoints are kept here"
    )
    parser.add_argument(
        "--results", type=Path, default=REPO / "results", help="the default run's results directory (section 5)"
    )
    parser.add_argument("--sections", type=int, nargs="+", choices=SECTIONS, default=list(SECTIONS))
    return parser.parse_args(argv)


def _models_section(models: dict[str, torch.nn.Module], sizes: Sizes) -> list[str]:
    rows = [
        [c.name, f"{c.width:g}", f"{num_params(models[c.name]):,}", c.epochs, c.steps_per_epoch or "full passes"]
        for c in sizes.models
    ]
    return [
        "## Checkpoints",
        "",
        "Trained with SGD (lr 0.01, momentum 0.9, batch 32) on digits at 32x32 by the library's training loop, "
        "cached under benchmarks/.cache/.",
        "",
        *table(["model", "width", "parameters", "epochs", "steps per epoch"], rows),
    ]


def run_sections(selected: list[int], sizes: Sizes, device: torch.device, models: dict, results: Path) -> list[Section]:
    """Build the ``selected`` sections of the report (1 to 6), logging how long each took."""
    builders = {
        1: lambda: products_section(models, sizes, device),
        2: lambda: eigen_section(models, sizes, device),
        3: lambda: density_section(sizes.density_model, models[sizes.density_model], sizes, device),
        4: lambda: scaling_section(models, sizes, device),
        5: lambda: workflow_section(results, sizes.import_rounds),
        6: lambda: spectrum_job_section(results.parent, sizes.import_rounds),
    }
    sections = []
    for number in selected:
        started = time.perf_counter()
        log.info("section %d ...", number)
        sections.append(builders[number]())
        log.info("section %d done in %.0f s", number, time.perf_counter() - started)
    return sections


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections and write the report to ``--out``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("hessian_spectra").setLevel(logging.WARNING)
    started, load_at_start = time.perf_counter(), os.getloadavg()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False  # as the curvature jobs run (runtime.setup_runtime)
        torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    sizes = SMOKE if args.smoke else FULL
    models = {choice.name: trained_model(choice, args.cache_dir, device) for choice in sizes.models}
    sections = run_sections(sorted(set(args.sections)), sizes, device, models, args.results)
    argv_shown = ["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]
    parts = [
        *header(sizes.label, device, argv_shown, time.perf_counter() - started, load_at_start),
        *targets_table(sections),
        *_models_section(models, sizes),
        *(section.markdown() for section in sections),
        "## Peer patches",
        "",
        *(f"- {patch}" for patch in PATCHES),
        "",
    ]
    markdown = "\n".join(parts)
    print(markdown)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
