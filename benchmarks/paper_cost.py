"""The paper DAG's compute, job by job, as FLOPs; calibrated by the paper rehearsal's measured job times.

Every compute job of a config is costed as (samples it touches) x (FLOPs per sample), where the FLOPs of one
forward pass come from ``torch.utils.flop_counter`` on the run's model at its input size, a gradient costs 3
forwards and a Hessian-vector product 3 gradients (section 1 of RESULTS.md: 3.00x by FLOP count; batched
probes 2x per probe; a layer block's lane at the share of the forward FLOPs from its block to the output, which
its product runs through). Training evaluates its training, test and validation splits at
epoch 0 and its test and validation splits after every epoch; ABSA's batch grows by its patience alone (the
slowest it can). Lanczos steps that stop on a residual are costed at the mean a finished default run needed per
call (capped at the config's ``max_steps``; NSGD's at the rehearsal's) and, as a bound, at ``max_steps``. The
rehearsal (``tests/test_paper_rehearsal.py``: every rule and model of the paper at full width, on the CPU) gives
each rule's achieved FLOPs per CPU second.

    python benchmarks/paper_cost.py --rehearsal DIR [--steps-results results/]   # DIR: the rehearsal's workdir
    python benchmarks/paper_cost.py --rehearsal DIR --gpu-tflops 10 30           # assumed sustained GPU rates

Writes benchmarks/PAPER_COST.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from benchmarks.fixtures import REPO  # noqa: E402
from benchmarks.report import table  # noqa: E402
from benchmarks.workflow_cost import JOB_STARTUP, rule_patterns, startup_seconds  # noqa: E402
from hessian_spectra import layout  # noqa: E402
from hessian_spectra.data.catalog import DATASET_NAMES, dataset_info  # noqa: E402
from hessian_spectra.models import build_model, layer_blocks  # noqa: E402
from hessian_spectra.runs import load_yaml, plan_runs, with_defaults  # noqa: E402
from hessian_spectra.train.absa import DEFAULTS as ABSA_DEFAULTS  # noqa: E402
from hessian_spectra.train.absa import POWER_ITERS as ABSA_POWER_ITERS  # noqa: E402
from hessian_spectra.train.nsgd import LANCZOS_MAX_STEPS as NSGD_MAX_STEPS  # noqa: E402

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
# (train, test) sizes of every built-in dataset, as the catalogue states them (the splits as loaded).
SPLIT_SIZES = {name: (dataset_info(name).train_size, dataset_info(name).test_size) for name in DATASET_NAMES}
GRADIENT, PRODUCT, LANE = 3.0, 9.0, 6.0  # FLOPs per sample in forwards: gradient, one HVP, one batched probe
DENSE_LANES = 64  # --max-lanes of the last-layer dense Hessian (rules/large_batch.smk)
DATA_SIZES_FILE = "data_sizes.json"  # in a rehearsal's working directory: {dataset: [train, test]} it served


@dataclass
class Cost:
    """FLOPs of one job: ``typical`` with observed Lanczos step counts, ``bound`` with ``max_steps``."""

    typical: float = 0.0
    bound: float = 0.0

    def add(self, flops: float, bound: float | None = None) -> None:
        """Add one piece of work: ``flops`` to the typical cost, ``bound`` (default ``flops``) to the bound."""
        self.typical += flops
        self.bound += flops if bound is None else bound


@cache
def _forward_flops(model: str, options: tuple, dataset: str, image_size: int) -> tuple[float, float, int]:
    """(forward FLOPs per sample, layer-block lanes in full lanes, last layer's parameter count) of a model at its
    input. A layer block's product runs the network from that block to the output, so its lane costs the share of
    the forward FLOPs from the block's module on (in execution order); the lanes of all blocks sum these shares."""
    info = dataset_info(dataset)
    net = build_model(model, info.in_channels, image_size, info.num_classes, **dict(options)).eval()
    order = []
    for name, module in net.named_modules():
        if not list(module.children()):
            module.register_forward_pre_hook(lambda _module, _inputs, name=name: order.append(name))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(2, info.in_channels, image_size, image_size))
    root = type(net).__name__
    flops = {name: sum(counter.get_flop_counts().get(f"{root}.{name}", {}).values()) for name in order}
    total = sum(flops.values())
    tails = [sum(flops[name] for name in order[order.index(block.rsplit(".", 1)[0]):]) / total
             for block in layer_blocks(net)]
    last = [p for p in net.parameters() if p.dim() >= 2][-1]
    return counter.get_total_flops() / 2, sum(tails), last.numel() + last.shape[0]


def model_facts(run: dict) -> tuple[float, float, int]:
    """``_forward_flops`` of a planned run's model."""
    options = tuple(sorted(run.get("model_options", {}).items()))
    return _forward_flops(run["model"], options, run["dataset"], run["image_size"])


def subset_size(run: dict) -> int:
    """Samples in a run's Hessian subset."""
    spec = run["subset"]
    return spec["size"] if spec["size"] is not None else spec["per_class"] * dataset_info(run["dataset"]).num_classes


def observed_steps(results: Path) -> dict[str, float]:
    """Mean Lanczos products per call of each rule in a finished run's tables (and NSGD's per-epoch Lanczos)."""
    sources = {
        "layerhessians_spectrum": "tables/layerhessians/runs/**/layer_spectra/epoch_*.tsv",
        "large_batch_spectrum": "tables/large_batch/runs/**/spectrum_full.tsv",
        "sharpest_directions_trajectory": "tables/sharpest_directions/runs/**/trajectory.tsv",
        "hessianflow_eigen": "tables/hessianflow/runs/**/dominant_eigen.tsv",
        "init_chain_rule_track": "tables/init_chain_rule/runs/**/chain_rule.tsv",
    }
    steps = {}
    for rule, pattern in sources.items():
        calls = []
        for path in results.glob(pattern):
            frame = pd.read_csv(path, sep="\t")
            lanczos = frame[frame["quantity"].str.startswith(("eigenvalue", "top_eig"))]
            call = [c for c in ("run", "epoch", "step", "block", "quantity") if c in lanczos.columns]
            calls += list(lanczos.groupby(call)["products"].first())
        if calls:
            steps[rule] = sum(calls) / len(calls)
    nsgd = [pd.read_csv(p, sep="\t")["nsgd_lanczos_steps"].dropna() for p in results.glob("**/nsgd-*/history.tsv")]
    nsgd = pd.concat(nsgd) if nsgd else pd.Series(dtype=float)
    if len(nsgd):
        steps["nsgd"] = float(nsgd.mean())
    return steps


def _lanczos(cost: Cost, observed: dict, rule: str, max_steps: int, flops_per_step: float) -> None:
    typical = min(observed.get(rule, max_steps), max_steps)
    cost.add(typical * flops_per_step, max_steps * flops_per_step)


def absa_ratios(run: dict) -> list[int]:
    """ABSA's batch-size ratio in each epoch when only its patience doubles it (the slowest growth it can have)."""
    optimizer = {**ABSA_DEFAULTS, **run["optimizer"]}
    return [min(2 ** ((epoch - 1) // optimizer["patience"]), optimizer["max_ratio"]) for epoch in range(1, run["epochs"] + 1)]


def train_cost(run: dict, observed: dict, sizes: dict[str, tuple[int, int]] = SPLIT_SIZES) -> Cost:
    """One training job: gradients over every epoch's samples, the evaluations (train, test and validation splits
    at epoch 0, test and validation after every epoch), the optimizer's extras; ``sizes``: (train, test) per
    dataset."""
    forward, _, _ = model_facts(run)
    n_train, n_test = sizes[run["dataset"]]
    n_train -= run["valid_size"]
    epochs = run["epochs"]
    steps = run["steps_per_epoch"]
    optimizer = {**ABSA_DEFAULTS, **run["optimizer"]} if run["optimizer"]["name"] == "absa" else run["optimizer"]
    ratios = absa_ratios(run) if optimizer["name"] == "absa" else [1] * epochs
    seen = [steps * run["batch_size"] * ratio if steps else n_train for ratio in ratios]  # per epoch
    evaluated = n_train + (epochs + 1) * (n_test + run["valid_size"])
    cost = Cost()
    cost.add((sum(seen) * GRADIENT + evaluated) * forward)
    if optimizer["name"] == "nsgd":
        max_steps = optimizer.get("max_steps", NSGD_MAX_STEPS)
        _lanczos(cost, observed, "nsgd", max_steps, epochs * subset_size(run) * PRODUCT * forward)
    if optimizer["name"] == "absa":  # power iteration while checking (below the cap) + FGSM in the first half
        checks = sum(ratio < optimizer["max_ratio"] for ratio in ratios)
        cost.add(checks * ABSA_POWER_ITERS * optimizer["eig_batch"] * PRODUCT * forward)
        adversarial = sum(n for epoch, n in enumerate(seen, 1) if epoch < epochs / 2)
        cost.add(optimizer["adv_ratio"] * adversarial * GRADIENT * forward)
    return cost


def curvature_costs(run: dict, study: dict, observed: dict) -> dict[str, tuple[int, Cost]]:
    """Rule -> (jobs, FLOPs of all of them) for one run's curvature jobs."""
    forward, block_lanes, last_params = model_facts(run)
    samples = subset_size(run)
    checkpoints = run["epochs"] + 1
    name = run["study"]
    out: dict[str, tuple[int, Cost]] = {}
    if name == "layerhessians":
        spec, cost = study["spectrum"], Cost()
        cost.add(spec["lanczos_steps"] * spec["probes"] * (1 + block_lanes) * samples * LANE * forward)
        per_step = (1 + block_lanes) * samples * LANE * forward
        _lanczos(cost, observed, "layerhessians_spectrum", spec["max_steps"], per_step)
        out["layerhessians_spectrum"] = (checkpoints, _scaled(cost, checkpoints))
    elif name == "large_batch":
        spec, land = study["spectrum"], study["landscape"]
        cost = Cost()
        if "full" in spec["hessians"]:
            _lanczos(cost, observed, "large_batch_spectrum", spec["max_steps"], samples * PRODUCT * forward)
        if "last_layer" in spec["hessians"]:
            cost.add(math.ceil(last_params / DENSE_LANES) * samples * forward)
        out["large_batch_spectrum"] = (len(spec["hessians"]), cost)
        passes = len(land["directions"]) * land["grid_points"] ** 2
        if land["hessian"] == "last_layer" and (land["random_params"] == "hessian" or land["directions"] == ["eigen"]):
            # only the last layer moves: the layers before it run once (landscape.loss_surface)
            out["large_batch_landscape"] = (1, _fixed(samples * forward + passes * samples * 2 * last_params))
        else:
            out["large_batch_landscape"] = (1, _fixed(passes * samples * forward))
    elif name == "sharpest_directions":
        cost = Cost()
        _lanczos(cost, observed, "sharpest_directions_trajectory", study["spectrum"]["max_steps"], samples * PRODUCT * forward)
        out["sharpest_directions_trajectory"] = (1, _scaled(cost, checkpoints))
    elif name == "hessianflow":
        eigen, final, cost = study["eigen"], study["final"], Cost()
        cost.add(eigen["power_iters"] * samples * PRODUCT * forward)
        _lanczos(cost, observed, "hessianflow_eigen", eigen["max_steps"], samples * PRODUCT * forward)
        out["hessianflow_eigen"] = (1, _scaled(cost, checkpoints))
        probes = final["trace_probes"] + final["density_steps"] * final["density_probes"]
        out["hessianflow_final"] = (1, _fixed(probes * samples * LANE * forward))
    elif name == "init_chain_rule":
        track, cost = study["tracking"], Cost()
        terms = 2 * 3  # (tracked block, full) x (H, G, H - G)
        cost.add(terms * track["frobenius_probes"] * samples * LANE * forward)
        _lanczos(cost, observed, "init_chain_rule_track", track["max_steps"], terms * samples * PRODUCT * forward)
        out["init_chain_rule_track"] = (1, _scaled(cost, checkpoints))
    return out


def _fixed(flops: float) -> Cost:
    return Cost(flops, flops)


def _scaled(cost: Cost, factor: float) -> Cost:
    return Cost(cost.typical * factor, cost.bound * factor)


def config_costs(
    config: dict, observed: dict, sizes: dict[str, tuple[int, int]] = SPLIT_SIZES
) -> dict[tuple[str, str], tuple[int, Cost]]:
    """(study, rule) -> (jobs, total FLOPs) over every planned run of ``config``; ``sizes``: as in ``train_cost``."""
    config = with_defaults(config, SCHEMA)
    totals: dict[tuple[str, str], list] = defaultdict(lambda: [0, Cost()])
    for run in plan_runs(config, SCHEMA).values():
        items = {"train": (1, train_cost(run, observed, sizes))}
        items |= curvature_costs(run, config["studies"][run["study"]], observed)
        for rule, (jobs, cost) in items.items():
            entry = totals[(run["study"], rule)]
            entry[0] += jobs
            entry[1].add(cost.typical, cost.bound)
    return {key: (jobs, cost) for key, (jobs, cost) in totals.items()}


def _by_rule(costs: dict) -> dict[str, tuple[int, Cost]]:
    merged: dict[str, list] = defaultdict(lambda: [0, Cost()])
    for (_, rule), (jobs, cost) in costs.items():
        merged[rule][0] += jobs
        merged[rule][1].add(cost.typical, cost.bound)
    return {rule: (jobs, cost) for rule, (jobs, cost) in merged.items()}


def split_sizes(workdir: Path) -> dict[str, tuple[int, int]]:
    """(train, test) images per dataset: those a rehearsal served (``DATA_SIZES_FILE`` in its working directory,
    tests/test_paper_rehearsal.py writes it), else the real datasets'."""
    path = workdir / DATA_SIZES_FILE
    served = json.loads(path.read_text()) if path.is_file() else {}
    return {**SPLIT_SIZES, **{name: tuple(sizes) for name, sizes in served.items()}}


USAGE = re.compile(r"resource use: peak RSS (\d+) MiB, CPU ([\d.]+) s user ([\d.]+) s system")


def logged_usage(log: Path) -> tuple[float, float] | None:
    """(peak RSS bytes, CPU seconds) a compute job logged at exit (``runtime.log_resource_use``), if it did."""
    found = USAGE.search(log.read_text()) if log.is_file() else None
    if found is None:
        return None
    peak, user, system = map(float, found.groups())
    return peak * 2**20, user + system


def rule_jobs(results: Path) -> dict[str, list[dict]]:
    """Per rule, every job measured in ``results``: its run key and job name, the benchmark row (seconds ``s``,
    ``cpu_time``, ``max_rss``: sampled) and, where its log has it, ``peak`` bytes and ``cpu`` seconds (the kernel's)."""
    patterns = rule_patterns(REPO / "workflow" / "rules")
    jobs: dict[str, list[dict]] = defaultdict(list)
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        relative = "results/benchmarks/" + path.relative_to(results / "benchmarks").as_posix()
        rule = next((name for name, regex in patterns if regex.fullmatch(relative)), None)
        if rule is None:
            continue
        parts = path.relative_to(results / "benchmarks").with_suffix("").parts
        key, name = "/".join(parts[:7]), "/".join(parts[7:])
        row = pd.read_csv(path, sep="\t").iloc[0].to_dict()
        usage = logged_usage(results.parent / layout.log(f"{key}/{name}"))
        peak, cpu = usage or (float(row["max_rss"]) * 2**20, float(row["cpu_time"]))
        jobs[rule].append({**row, "key": key, "name": name, "peak": peak, "cpu": cpu, "logged": usage is not None})
    return dict(jobs)


def report(args: argparse.Namespace) -> str:
    """The Markdown report: the paper DAG's FLOPs per job, calibrated by the rehearsal, and its GPU-hours."""
    rehearsal_config = load_yaml(args.rehearsal / "paper-rehearsal.yaml")
    rehearsal_results = args.rehearsal / "results"
    ran = observed_steps(rehearsal_results)
    observed = observed_steps(args.steps_results) if args.steps_results.is_dir() else {}
    observed["nsgd"] = ran.get("nsgd", observed.get("nsgd", NSGD_MAX_STEPS))  # unscaled in the rehearsal
    sizes = split_sizes(args.rehearsal)
    calibration = _by_rule(config_costs(rehearsal_config, ran, sizes))
    measured = rule_jobs(rehearsal_results)
    job_start = startup_seconds(3)[0][JOB_STARTUP]
    paper = config_costs(load_yaml(args.config), observed)
    lo, hi = sorted(args.gpu_tflops)
    lines = [
        "# The paper DAG's compute: FLOPs per job, and GPU-hours at stated throughputs",
        "",
        f"`python benchmarks/paper_cost.py` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d}: "
        f"`{args.config.relative_to(REPO)}`; job times per FLOP from its rehearsal (`{args.rehearsal}`: every rule, "
        "every model at full width, on this machine's CPU); Lanczos step counts (the *typical* column) from "
        + (f"the finished default run in `{args.steps_results}`" if args.steps_results.is_dir() else "nowhere")
        + " and NSGD's from the rehearsal (whose NSGD Lanczos is not scaled). Method: module docstring of "
        "benchmarks/paper_cost.py.",
        "",
        "## Calibration: the FLOP model against the rehearsal's measured job times (this machine, CPU, full widths)",
        "",
        "Lanczos products per call in the rehearsal: "
        + ", ".join(f"{rule} {steps:.1f}" for rule, steps in sorted(ran.items()))
        + (". Typical counts used for the paper: " + ", ".join(f"{r} {n:.1f}" for r, n in sorted(observed.items()))
           if observed else "")
        + ".",
        "",
    ]
    rows, rates = [], {}
    for rule, (jobs, cost) in sorted(calibration.items()):
        if rule not in measured:
            continue
        entries = measured[rule]
        cpu = sum(e["cpu"] for e in entries)
        compute = cpu - len(entries) * job_start
        rates[rule] = cost.typical / compute if compute > 0 else math.nan
        rows.append(
            [rule, f"{jobs} / {len(entries)}", f"{cost.typical / 1e12:.2f}", f"{sum(e['s'] for e in entries):.0f}",
             f"{cpu:.0f}", f"{compute:.0f}", f"{rates[rule] / 1e9:.1f}" if compute > 0 else "n/a"]
        )
    lines += table(["rule", "jobs planned / measured", "TFLOP (model)", "wall s", "CPU s", "CPU s minus start-up",
                     "achieved GFLOP/s per CPU s"], rows)
    lines += [
        f"*minus start-up*: each job's {job_start:.2f} s of imports (measured now) taken off; CPU seconds (user + "
        "system, as each job logged at exit; Snakemake's `cpu_time` where it did not) rather than wall seconds, which "
        "other processes on the machine stretch. The rates are per core-second of this CPU, models at the paper's widths on the rehearsal's small "
        "Hessian batches: no basis for a GPU's rate.",
        "",
        f"## Paper DAG (`{args.config.name}`)",
        "",
    ]
    rows, total_jobs, total, cpu_hours = [], 0, Cost(), 0.0
    for (study, rule), (jobs, cost) in sorted(paper.items()):
        total_jobs += jobs
        total.add(cost.typical, cost.bound)
        here = cost.typical / rates.get(rule, math.nan) / 3600
        cpu_hours += here
        rows.append([study, rule, jobs, f"{cost.typical / 1e15:.2f}", f"{cost.bound / 1e15:.2f}",
                     f"{cost.typical / (hi * 1e12) / 3600:.1f}", f"{cost.typical / (lo * 1e12) / 3600:.1f}",
                     f"{here:,.0f}"])
    overhead_h = total_jobs * args.job_overhead_s / 3600
    rows.append(["**all**", "", total_jobs, f"{total.typical / 1e15:.2f}", f"{total.bound / 1e15:.2f}",
                 f"{total.typical / (hi * 1e12) / 3600 + overhead_h:.1f}",
                 f"{total.typical / (lo * 1e12) / 3600 + overhead_h:.1f}", f"{cpu_hours:,.0f}"])
    lines += table(["study", "rule", "jobs", "PFLOP (typical)", "PFLOP (bound)", f"GPU-h at {hi:g} TFLOP/s",
                     f"GPU-h at {lo:g} TFLOP/s", "core-hours on this CPU"], rows)
    lines += [
        f"The *all* row adds {args.job_overhead_s:g} s of start-up (imports, CUDA context, data loading) per job: "
        f"{overhead_h:.1f} GPU-h. With every residual-stopped Lanczos at its `max_steps` (the *bound* column) the "
        f"total is {total.bound / (hi * 1e12) / 3600 + overhead_h:.1f} to "
        f"{total.bound / (lo * 1e12) / 3600 + overhead_h:.1f} GPU-h. *Core-hours on this CPU*: each rule's typical "
        "FLOPs at the rate its rehearsal jobs reached per core-second.",
        "",
        f"No GPU was available to this project, so {lo:g} to {hi:g} TFLOP/s sustained is an assumption, not a "
        "measurement: an H100's FP32 peak is 67 TFLOP/s, curvature products run in exact FP32 (TF32 off) and "
        "the small models (lenet, c1, mlp) will not fill it. Rerun the rehearsal with `device: cuda` and this "
        "script on it to see the achieved rate on a real GPU.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``benchmarks/paper_cost.py``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "paper.yaml")
    parser.add_argument("--rehearsal", type=Path, required=True,
                        help="working directory of a finished paper rehearsal (tests/test_paper_rehearsal.py)")
    parser.add_argument("--steps-results", type=Path, default=REPO / "results",
                        help="results/ of a finished default run: its Lanczos step counts are the typical ones")
    parser.add_argument("--gpu-tflops", type=float, nargs=2, default=(10.0, 30.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--job-overhead-s", type=float, default=15.0, help="start-up seconds per GPU job (15)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "PAPER_COST.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the report to ``--out`` and print it."""
    args = parse_args(argv)
    args.config = args.config.resolve()
    text = report(args)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
