"""The three calls of a PyHessian user (top-5 eigenvalues, trace, density) in PyHessian 0.1 and in
``hessian_spectra.Hessian``, on one model and data; and the measurements behind ``Hessian``'s defaults.

    .venv/bin/python benchmarks/side_by_side.py [--threads 2] [--rounds 3] [--out benchmarks/SIDE_BY_SIDE.md]

Both libraries see the same trained checkpoint (the default run's hessianflow model: c1 at width 0.25 with
BatchNorm, trained on 8x8 digits) and the same 256 training images. Calls alternate between the libraries within
a round (the order reversed every round), so a load that changes slowly hits both alike; wall and CPU seconds
(user + system of this process) are medians over rounds, ratios medians of per-round ratios. Accuracy is
judged against a float64 reference: Lanczos to relative Ritz residuals of 1e-10, and a 2,000-probe trace.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import logging
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.fixtures import REPO, SCHEMA, num_params  # noqa: E402
from benchmarks.peers import torch_eig_shim  # noqa: E402
from benchmarks.report import _cpu_name, _loads, fmt, table  # noqa: E402
from hessian_spectra.checkpoint import model_from_checkpoint  # noqa: E402
from hessian_spectra.curvature import CurvatureOperator, hutchinson, lanczos  # noqa: E402
from hessian_spectra.data import load_split  # noqa: E402
from hessian_spectra.hessian import Hessian  # noqa: E402
from hessian_spectra.layout import RunFiles  # noqa: E402
from hessian_spectra.runs import load_yaml, plan_runs, run_json  # noqa: E402

log = logging.getLogger("benchmarks")

K = 5
# the default run's hessianflow model and data (config.yaml), three epochs
RUN = {"model": "c1", "model_options": {"width": 0.25}, "dataset": "digits", "image_size": 8, "epochs": 3,
       "batch_size": 16, "lr": 0.02, "momentum": 0.9, "seed": 0}
DATA_BATCHES = (64, 128, 256, 512, 1024)
BATCH_SAMPLES = 1024  # images of the samples-per-pass measurement (digits has 1,437 training images)
PROBE_BATCHES = (1, 2, 4, 8, 16)
TOLERANCES = (1e-2, 1e-3, 1e-4, 1e-6)



def trained_model(cache_dir: Path) -> nn.Module:
    """The checkpoint both libraries see: trained once on the CPU, then read from ``cache_dir``."""
    from hessian_spectra.train.loop import train_run

    (run,) = plan_runs({"studies": {"hessianflow": {"runs": [RUN]}}}, load_yaml(SCHEMA)).values()
    out = cache_dir / "checkpoints" / f"c1-{hashlib.sha256(run_json(run).encode()).hexdigest()[:12]}"
    final = Path(RunFiles(str(out)).checkpoint(RUN["epochs"]))
    if not final.exists():
        train_run(run, out, device="cpu")
    return model_from_checkpoint(final).eval()


def clocked(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds (user + system, every thread of this process) of ``fn()``, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def rounds_of(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of every function in each round; the order reverses every round."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for r in range(rounds):
        for name in list(fns) if r % 2 == 0 else list(reversed(fns)):
            wall, cpu, _ = clocked(fns[name])
            times[name].append((wall, cpu))
    return times


def median(times: list[tuple[float, float]], which: int) -> float:
    """Median over rounds of the wall (``which=0``) or CPU (``which=1``) seconds in ``times``."""
    return statistics.median(t[which] for t in times)


def ratio(times: dict, name: str, base: str, which: int) -> float:
    """Median over rounds of ``times[name] / times[base]`` (``which``: 0 wall, 1 CPU)."""
    return statistics.median(a[which] / b[which] for a, b in zip(times[name], times[base]))


@contextlib.contextmanager
def counted_pyhessian() -> Any:
    """PyHessian's ``hessian_vector_product`` counted (one call is one product), its per-product warning silenced."""
    module = importlib.import_module("pyhessian.hessian")  # the module: the package's `hessian` is the class
    original, count = module.hessian_vector_product, [0]

    def counting(*args):
        count[0] += 1
        return original(*args)

    module.hessian_vector_product = counting
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield count
    finally:
        module.hessian_vector_product = original


# ---------------------------------------------------------------------------------------------------- defaults
def defaults_section(model: nn.Module, images, labels, x, y, reference: np.ndarray, rounds: int) -> list[str]:
    """Product cost by samples per product pass (on ``images``) and by probes per pass (on ``x``); top-5 cost and
    error by tolerance."""
    lines = ["## 1. The defaults of `Hessian`, measured", ""]
    sizes = [b for b in DATA_BATCHES if b <= len(images)]
    per_batch = {b: Hessian(model, (images, labels), batch_size=b) for b in sizes}
    single = {b: torch.randn(h.operator.shape[0], 1, dtype=torch.float64) for b, h in per_batch.items()}
    times = rounds_of({f"batch {b}": (lambda h=h, v=single[b]: h.operator.matmat(v)) for b, h in per_batch.items()},
                      rounds + 1)  # the first round builds and keeps each batch's graph
    times = {name: values[1:] for name, values in times.items()}
    rows = [[b, fmt(median(times[f"batch {b}"], 0)), fmt(median(times[f"batch {b}"], 1)),
             fmt(ratio(times, f"batch {b}", f"batch {sizes[-1]}", 1))] for b in sizes]
    lines += [f"One single-probe product over {len(images)} images, by samples per product pass (`batch_size`), "
              f"graphs kept (median of {rounds} interleaved rounds after one that builds them):", ""]
    lines += table(["samples per pass", "wall s", "CPU s", f"CPU / batch {sizes[-1]}"], rows)
    del per_batch

    hessian = Hessian(model, (x, y))
    probes = max(PROBE_BATCHES)
    hessian.trace(1)  # builds the kept graphs
    times = rounds_of({f"{b}": (lambda b=b: hessian.trace(probes, probe_batch=b)) for b in PROBE_BATCHES}, 2 * rounds)
    rows = [[b, fmt(median(times[f"{b}"], 0) / probes), fmt(median(times[f"{b}"], 1) / probes),
             fmt(ratio(times, f"{b}", "1", 1))] for b in PROBE_BATCHES]
    lines += [f"`trace()` on the {len(x)} images of section 2: {probes} probes, by probes per product pass "
              f"(`probe_batch`; the engine runs at most 8 lanes at once on the CPU), per probe (median of {2 * rounds} "
              "interleaved rounds):", ""]
    lines += table(["probes per pass", "wall s / probe", "CPU s / probe", "CPU / 1 per pass"], rows)

    rows = []
    for tol in TOLERANCES:
        wall, cpu, result = clocked(lambda tol=tol: hessian.eigenvalues(K, tol=tol))
        error = np.max(np.abs(np.sort(result.eigenvalues)[::-1] - reference) / np.abs(reference))
        rows.append([f"{tol:g}", result.products, fmt(wall), fmt(cpu), f"{error:.1e}", bool(result.all_converged)])
    lines += ["`eigenvalues(5)` by `tol` (relative Ritz residual), one call each:", ""]
    lines += table(["tol", "products", "wall s", "CPU s", "max rel. error vs reference", "converged"], rows)
    return lines


# ---------------------------------------------------------------------------------------------------- side by side
def three_calls(model: nn.Module, x, y, rounds: int) -> tuple[dict, dict]:
    """Each library's constructor and three calls, timed in interleaved rounds; the last round's results."""
    from pyhessian import hessian as pyhessian

    results: dict[str, Any] = {}
    ours: dict[str, Hessian] = {}
    theirs: dict[str, Any] = {}

    def keep(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def call():
            results[name] = fn()
        return call

    def pyhessian_call(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def call():
            torch.manual_seed(0)  # PyHessian draws from torch's global generator
            with counted_pyhessian() as count:
                value = fn()
            results[name] = (value, count[0])
        return call

    fns = {
        "ours: H = Hessian(model, (x, y))": keep("ours: init", lambda: ours.update(h=Hessian(model, (x, y)))),
        "ours: H.eigenvalues(5)": keep("ours: top", lambda: ours["h"].eigenvalues(K)),
        "ours: H.trace()": keep("ours: trace", lambda: ours["h"].trace()),
        "ours: H.density()": keep("ours: density", lambda: ours["h"].density()),
        "PyHessian: H = hessian(model, criterion, data=(x, y), cuda=False)": pyhessian_call(
            "theirs: init", lambda: theirs.update(h=pyhessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False))
        ),  # its backward accumulates into .grad: every round starts with none (below)
        "PyHessian: H.eigenvalues(top_n=5)": pyhessian_call(
            "theirs: top", lambda: theirs["h"].eigenvalues(top_n=K)
        ),
        "PyHessian: H.trace()": pyhessian_call("theirs: trace", lambda: theirs["h"].trace()),
        "PyHessian: H.density()": pyhessian_call("theirs: density", lambda: _patched_density(theirs["h"])),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):  # a library's calls in their order; which library goes first alternates
        model.zero_grad(set_to_none=True)
        halves = [names[:4], names[4:]]
        for name in [n for half in (halves if r % 2 == 0 else halves[::-1]) for n in half]:
            wall, cpu, _ = clocked(fns[name])
            times[name].append((wall, cpu))
    model.zero_grad(set_to_none=True)
    return times, results


def _patched_density(computer) -> tuple[list, list]:
    with torch_eig_shim():  # PyHessian 0.1 calls torch.eig, removed in PyTorch 2 (benchmarks/peers.py)
        return computer.density()


def stderr_of(samples: list[float]) -> float:
    """The standard error of the mean of ``samples`` (NaN for fewer than two)."""
    return float(np.std(samples, ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else math.nan


def side_by_side_section(
    model: nn.Module, x, y, exact: CurvatureOperator, reference: np.ndarray,
    trace_reference: tuple[float, float, int], rounds: int,
) -> list[str]:
    """Section 2 of the report: the three calls' timings in both libraries, and their results against the exact
    reference."""
    times, results = three_calls(model, x, y, rounds)
    names = list(times)
    pairs = list(zip(names[:4], names[4:]))
    rows = [[f"`{_call(ours)}`", fmt(median(times[ours], 0)), fmt(median(times[ours], 1)), f"`{_call(theirs)}`",
             fmt(median(times[theirs], 0)), fmt(median(times[theirs], 1)), fmt(ratio(times, theirs, ours, 1))]
            for ours, theirs in pairs]
    total = {lib: [(sum(times[n][r][0] for n in half), sum(times[n][r][1] for n in half)) for r in range(rounds)]
             for lib, half in (("ours", names[:4]), ("theirs", names[4:]))}
    rows.append(["all four lines", fmt(median(total["ours"], 0)), fmt(median(total["ours"], 1)), "all four lines",
                 fmt(median(total["theirs"], 0)), fmt(median(total["theirs"], 1)),
                 fmt(ratio(total, "theirs", "ours", 1))])
    lines = ["## 2. The three calls side by side", "",
             f"Median of {rounds} rounds; the last column is the median per-round ratio of CPU seconds "
             "(PyHessian / this library).", ""]
    lines += table(["this library", "wall s", "CPU s", "PyHessian 0.1", "wall s", "CPU s", "CPU ratio"], rows)

    top, (their_values, their_vectors), their_top_products = (
        results["ours: top"], results["theirs: top"][0], results["theirs: top"][1])
    their_values = np.array(their_values)
    columns = torch.stack([torch.cat([t.reshape(-1) for t in vector]) for vector in their_vectors], dim=1)
    columns = columns.to(torch.float64) / columns.to(torch.float64).norm(dim=0, keepdim=True)
    theta = torch.as_tensor(their_values)
    their_residuals = ((exact.matmat(columns) - columns * theta).norm(dim=0) / theta.abs()).numpy()
    our_relative = top.residuals / np.abs(top.eigenvalues)
    lines += ["### Top-5 eigenvalues", "",
              f"Reference (float64 Lanczos, relative residuals <= 1e-10): {_values(reference)}.", ""]
    lines += table(
        ["", "eigenvalues as returned", "in descending order", "max rel. error", "relative residuals",
         "products"],
        [["this library", _values(top.eigenvalues), bool(np.all(np.diff(top.eigenvalues) <= 0)),
          f"{_error(top.eigenvalues, reference):.1e}", _values(our_relative, 2), top.products],
         ["PyHessian 0.1", _values(their_values), bool(np.all(np.diff(their_values) <= 0)),
          f"{_error(their_values, reference):.1e}", _values(their_residuals, 2), their_top_products]],
    )
    lines += ["Relative residuals: `||Hv - lambda v|| / |lambda|`; this library reports them (and `converged`) "
              "with every eigenvalue, PyHessian's are recomputed here with the float64 operator.", ""]

    trace, (their_samples, their_trace_products) = results["ours: trace"], results["theirs: trace"]
    ref_value, ref_stderr, ref_probes = trace_reference
    their_mean, their_stderr = float(np.mean(their_samples)), stderr_of(their_samples)
    lines += ["### Trace", "",
              f"Reference: {ref_probes} Rademacher probes, {ref_value:.5g} +- {ref_stderr:.2g}.", ""]
    lines += table(
        ["", "estimate +- standard error", "probes (products)", "difference from the reference / its error"],
        [["this library", f"{float(trace.value):.5g} +- {float(trace.stderr):.2g} (reported)", trace.products,
          _z(float(trace.value), float(trace.stderr), ref_value, ref_stderr)],
         ["PyHessian 0.1", f"{their_mean:.5g} +- {their_stderr:.2g} (from its samples)", their_trace_products,
          _z(their_mean, their_stderr, ref_value, ref_stderr)]],
    )
    lines += ["PyHessian's `trace()` returns its per-probe samples and stops when their running mean changes by "
              "less than 0.1% between two probes; this library runs the probes asked for and reports the standard "
              "error.", ""]

    density, ((their_nodes, their_weights), their_density_products) = results["ours: density"], results[
        "theirs: density"]
    nodes, weights = np.array(their_nodes[0]), np.array(their_weights[0])
    n = exact.shape[0]
    lines += ["### Density", ""]
    lines += table(
        ["", "Lanczos steps x probes", "largest node", "smallest node", "implied trace (n x mean)", "products"],
        [["this library", f"{density.steps} x {density.nodes.shape[0]}", f"{density.nodes.max():.5g}",
          f"{density.nodes.min():.4g}", f"{n * density.moment(1)[0]:.5g}", density.products],
         ["PyHessian 0.1", f"{len(nodes)} x {len(their_nodes)}", f"{nodes.max():.5g}", f"{nodes.min():.4g}",
          f"{n * float(np.sum(nodes * weights)):.5g}", their_density_products]],
    )
    lines += [f"The largest node of a converged density is lambda_1 ({reference[0]:.5g}); one probe gives no error "
              "estimate for the implied trace (this library's `moment()` returns NaN for it). PyHessian's "
              "`density()` needs `torch.eig`, which PyTorch 2 removed: the harness supplies it during the call "
              "(`torch_eig_shim`, benchmarks/peers.py).", ""]
    return lines


def _call(name: str) -> str:
    """A timed line as its user writes it: the library prefix dropped."""
    return name.split(": ", 1)[1]


def _values(values, digits: int = 5) -> str:
    return ", ".join(f"{v:.{digits}g}" for v in np.asarray(values, dtype=float))


def _error(values, reference: np.ndarray) -> float:
    return float(np.max(np.abs(np.sort(np.asarray(values, dtype=float))[::-1] - reference) / np.abs(reference)))


def _z(value: float, stderr: float, ref: float, ref_stderr: float) -> str:
    return f"{(value - ref) / math.hypot(stderr, ref_stderr):+.2f}"


# ---------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``benchmarks/side_by_side.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every timing (3)")
    parser.add_argument("--samples", type=int, default=256, help="training images both libraries see (256)")
    parser.add_argument("--reference-probes", type=int, default=2000, help="probes of the reference trace (2000)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "SIDE_BY_SIDE.md")
    parser.add_argument("--cache-dir", type=Path, default=REPO / "benchmarks" / ".cache")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Time both libraries' three calls and measure the defaults' accuracy; write the report to ``--out``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    started, cpu_started, load_at_start = time.perf_counter(), time.process_time(), os.getloadavg()
    model = trained_model(args.cache_dir)
    images, labels = (t[:BATCH_SAMPLES] for t in load_split("digits", "train", image_size=RUN["image_size"]))
    x, y = images[: args.samples], labels[: args.samples]

    log.info("reference")
    exact = CurvatureOperator(model, [(x, y)], dtype=torch.float64)
    reference = lanczos(exact, k=K, tol=1e-10, max_steps=600).eigenvalues
    estimate = hutchinson(CurvatureOperator(model, [(x, y)]), args.reference_probes, seed=12345, batch=8)
    log.info("defaults")
    defaults = defaults_section(model, images, labels, x, y, reference, args.rounds)
    log.info("side by side")
    trace_reference = (float(estimate.value), float(estimate.stderr), args.reference_probes)
    side = side_by_side_section(model, x, y, exact, reference, trace_reference, args.rounds)
    heading = [
        "# The three calls of a PyHessian user, side by side",
        "",
        *table(["", ""], [
            ["machine", f"{_cpu_name()}, {os.cpu_count()} logical CPUs"],
            ["torch threads", torch.get_num_threads()],
            ["torch, PyHessian", f"{torch.__version__}, 0.1"],
            ["model", f"c1 (BatchNorm) at width {RUN['model_options']['width']:g}, {num_params(model):,} parameters, "
                      f"trained {RUN['epochs']} epochs on 8x8 digits (the default run's hessianflow model)"],
            ["data", f"the first {len(x)} digits training images, one batch"],
            ["command", "`" + " ".join(["python", "benchmarks/side_by_side.py", *(argv or sys.argv[1:])]) + "`"],
            ["harness wall / CPU time", f"{time.perf_counter() - started:.0f} s / "
                                         f"{time.process_time() - cpu_started:.0f} s"],
            ["load average (1, 5, 15 min) at start; at end", f"{_loads(load_at_start)}; {_loads(os.getloadavg())}"],
        ]),
        "Wall times under a load above the core count are unreliable; CPU seconds (user + system of this "
        "process, all its threads) and the per-round ratios hold up better.",
        "",
    ]
    text = "\n".join([*heading, *defaults, *side]).rstrip() + "\n"
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
