"""Peak memory per rule: a model of every job's bytes from its sizes, checked against the peak RSS that Snakemake's
benchmark files record (at the rehearsal's size and at a second size); what the paper DAG needs per rule on the
host and on the GPU, and the SLURM requests it gives.

One job's bytes (``job_memory``), every term from the job's sizes and its model's measured facts (``ModelFacts``):

- base: the process after a job's imports (Python, torch, the library), measured here.
- data: training holds its splits as float32 and peaks at ``LOAD_PEAK`` times them while loading (measured:
  1.0x to 2.6x over the four datasets and normalisations); curvature jobs hold the Hessian subset.
- weights: training's parameters, gradients and momentum buffers; a curvature job's model and the checkpoint it
  loaded (weights, momentum, NSGD's directions).
- activations: training's micro-batch saves ``train_act`` bytes a sample for its backward, an evaluation batch of
  1000 holds ``eval_act`` a sample, whichever is larger.
- graphs: the cached first-order graph of every Hessian batch (``graph_fixed`` + samples x ``graph_sample``, measured
  on the model), all of them while they fit in the memory budget (half the free memory), else the budget plus one
  batch; and one product's lanes (up to 8 on the CPU, 32 on CUDA), each a gradient of the parameters plus
  ``train_act`` a sample.
- basis: Lanczos in float64: SLQ holds probes x (steps + 1) vectors at once; top-k grows its basis in blocks of 32,
  64, ... up to ``max_steps`` + 1 vectors and copies the old block into the new; the layer-block operator's vectors
  span the layer blocks' weights only; the last layer's dense Hessian is a float64 square with its eigenvectors.
  NSGD's per-epoch Lanczos (up to 100 steps) and ABSA's power iteration count in training.

A job holds the larger of its phases (the full and the layer-block operator run one after the other). On a GPU the
data, weights, activations, graphs and basis are on the device; the host keeps the base, ``CUDA_HOST`` of CUDA
runtime (an allowance: no GPU was measured), the splits while loading, and the checkpoint.

    python benchmarks/paper_memory.py --rehearsal DIR [--check DIR2]   # DIR: a finished rehearsal's working dir

Writes benchmarks/PAPER_MEMORY.md.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402

from benchmarks.fixtures import REPO  # noqa: E402
from benchmarks.paper_cost import SCHEMA, SPLIT_SIZES, rule_jobs, split_sizes, subset_size  # noqa: E402
from benchmarks.report import _cpu_name, table  # noqa: E402
from benchmarks.workflow_cost import JOB_IMPORTS  # noqa: E402
from hessian_spectra import layout  # noqa: E402
from hessian_spectra.curvature import CurvatureOperator  # noqa: E402
from hessian_spectra.curvature.cache import graph_bytes  # noqa: E402
from hessian_spectra.data.catalog import dataset_info  # noqa: E402
from hessian_spectra.models import build_model, layer_blocks  # noqa: E402
from hessian_spectra.runs import load_yaml, plan_runs, with_defaults  # noqa: E402
from hessian_spectra.train.absa import DEFAULTS as ABSA_DEFAULTS  # noqa: E402
from hessian_spectra.train.nsgd import HVP_BATCH as NSGD_BATCH  # noqa: E402
from hessian_spectra.train.nsgd import LANCZOS_MAX_STEPS as NSGD_MAX_STEPS  # noqa: E402

# the second size: larger Hessian subsets and batches, more Lanczos steps and probes (benchmarks/paper_memory.py
# --make-check); its layer spectra for these models only (resnet18's would take most of an hour here)
SECOND_SCALE = ["--subset-size", "64", "--per-class", "2", "--lanczos-steps", "4", "--probes", "2", "--extra-steps", "3",
                "--grid-points", "9", "--max-batches", "4"]
SECOND_SIZE_MODELS = ("lenet", "vgg11_bn")
MB = 2**20
GB = 2**30
LOAD_PEAK = 2.6  # peak of loading the splits, in multiples of what stays (measured, see the module docstring)
EVAL_BATCH = 1000  # train/loop.py
EVAL_LIVE = 1.5  # tensors alive at an evaluation's largest module, in multiples of its input plus output
CUDA_HOST = 2 * GB  # host memory of the CUDA runtime and its kernels: an allowance, not measured
LANES = {"cpu": 8, "cuda": 32}  # CurvatureOperator's default max_lanes
DENSE_LANES = 64  # --max-lanes of the last-layer dense Hessian (rules/large_batch.smk): its products' lanes
PROBE_BATCH = 16  # Hutchinson's and the Frobenius norms' probes per product (curvature/trace.py)
REQUEST_MARGIN = 1.5  # SLURM request = predicted host peak x the check's worst ratio x this, in whole GiB
DEVICE_TERMS = ("data", "weights", "activations", "graphs", "basis")


@dataclass(frozen=True)
class ModelFacts:
    """A model at its input size: parameters, layer-block weights, the last layer, and bytes per sample."""

    params: int
    blocks: int
    block_params: int
    last_params: int
    last_inputs: int  # features into the last layer
    train_act: float  # saved for the backward, per training sample
    eval_act: float  # the largest module input plus output, per evaluation sample
    graph_fixed: float  # the cached first-order graph of a Hessian batch: the part independent of its size
    graph_sample: float  # ... and per sample


@cache
def _facts(model: str, options: str, dataset: str, image_size: int) -> ModelFacts:
    info = dataset_info(dataset)
    net = build_model(model, info.in_channels, image_size, info.num_classes, **yaml.safe_load(options))
    shape = (info.in_channels, image_size, image_size)
    params = sum(p.numel() for p in net.parameters())
    named = dict(net.named_parameters())
    blocks = sum(named[name].numel() for name in layer_blocks(net))
    last = [p for p in net.parameters() if p.dim() >= 2][-1]

    def saved(batch: int) -> float:
        x, y = torch.randn(batch, *shape), torch.arange(batch) % info.num_classes
        loss = F.cross_entropy(net.train()(x), y)
        return graph_bytes([loss], [*net.parameters(), *net.buffers(), x])

    def graph(batch: int) -> float:
        x, y = torch.randn(batch, *shape), torch.arange(batch) % info.num_classes
        op = CurvatureOperator(net.eval(), [(x, y)], memory_budget=2**62, check_determinism=False)
        op.matvec(torch.zeros(op.shape[0], dtype=torch.float64))
        return float(op.cache.used)

    largest = [0.0]

    def hook(_module, inputs, output):
        size = sum(t.numel() for t in (*inputs, output) if isinstance(t, torch.Tensor)) * 4
        largest[0] = max(largest[0], size)

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    with torch.no_grad():
        net.eval()(torch.randn(2, *shape))
    for handle in handles:
        handle.remove()
    g2, g6 = graph(2), graph(6)
    return ModelFacts(params, len(layer_blocks(net)), blocks, last.numel() + last.shape[0], last[0].numel(), (saved(6) - saved(2)) / 4, largest[0] / 2,
                      g2 - 2 * (g6 - g2) / 4, (g6 - g2) / 4)


def model_facts(run: dict) -> ModelFacts:
    """``ModelFacts`` of a planned run's model on its data."""
    return _facts(run["model"], yaml.safe_dump(run["model_options"]), run["dataset"], run["image_size"])


def base_bytes() -> float:
    """Peak RSS of a fresh interpreter after a job's imports."""
    code = JOB_IMPORTS.split(";")[0] + "; import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1]) * 1024


def _sample_bytes(run: dict) -> int:
    return dataset_info(run["dataset"]).in_channels * run["image_size"] ** 2 * 4


def topk_basis(n: int, steps: int) -> float:
    """Peak bytes of top-k Lanczos's float64 basis after ``steps`` steps (lanczos.py: blocks of 32, doubled)."""
    limit, capacity, previous = steps + 1, min(steps + 1, 32), 0
    while capacity < limit:
        previous, capacity = capacity, min(2 * capacity, limit)
    return 8.0 * n * (capacity + previous)


def graphs(facts: ModelFacts, samples: int, batch: int, lanes: int, budget: float) -> float:
    """The cached graphs of ``samples`` in batches of ``batch`` under ``budget``, and one product's ``lanes``: each a
    float32 gradient of the parameters and an activation gradient of the batch."""
    batch = min(batch, samples)
    batches = math.ceil(samples / batch)
    one = facts.graph_fixed + batch * facts.graph_sample
    kept = min(batches * facts.graph_fixed + samples * facts.graph_sample, budget + one)
    return kept + lanes * (4.0 * facts.params + batch * 2 * facts.eval_act)


@dataclass
class Job:
    """One compute job: its rule, run, the job's name in its run's benchmark folder, and what sets its memory."""

    rule: str
    run: dict
    name: str
    phases: list[dict]  # each: {"graphs": (samples, batch), "lanes": vectors per product, "basis": bytes, "extra": bytes}


def _curvature_weights(run: dict, facts: ModelFacts) -> float:
    """The model and the checkpoint it was loaded from (weights, momentum, NSGD's directions)."""
    copies = 2 + (run["momentum"] > 0 or run["optimizer"]["name"] == "absa")
    return 4.0 * facts.params * copies + 8.0 * facts.params * run["optimizer"].get("kk", 0)


def jobs_of(config: dict) -> list[Job]:
    """Every compute job of ``config`` with its memory-setting sizes."""
    config = with_defaults(config, SCHEMA)
    jobs = []
    for run in plan_runs(config, SCHEMA).values():
        study = config["studies"][run["study"]]
        facts, samples = model_facts(run), subset_size(run)
        jobs.append(Job("train", run, "train", []))
        if run["study"] == "layerhessians":
            spec = study["spectrum"]
            steps = spec["max_steps"] if spec["top_k"] else 0
            phases = []
            for n, segments in ((facts.params, 1), (facts.block_params, facts.blocks)):
                slq = 8.0 * n * spec["probes"] * (spec["lanczos_steps"] + 1)
                phases.append({"graphs": (samples, spec["batch_size"]), "lanes": segments * spec["probes"],
                               "basis": max(topk_basis(n, steps), slq)})
            jobs += [Job("layerhessians_spectrum", run, f"layer_spectra/epoch_{epoch:04d}", phases)
                     for epoch in range(run["epochs"] + 1)]
        elif run["study"] == "large_batch":
            spec, land = study["spectrum"], study["landscape"]
            if "full" in spec["hessians"]:
                basis = topk_basis(facts.params, spec["max_steps"]) + 8.0 * facts.params * spec["top_k"]
                jobs.append(Job("large_batch_spectrum", run, "large_batch_spectrum_full",
                                [{"graphs": (samples, spec["batch_size"]), "basis": basis}]))
            if "last_layer" in spec["hessians"]:
                # only the last layer's graph is kept and its products' lanes stop there
                batch = min(spec["batch_size"], samples)
                dense = 3 * 8.0 * facts.last_params**2 + DENSE_LANES * 8.0 * facts.last_params
                lanes = DENSE_LANES * (4.0 * facts.last_params + 2 * 4.0 * batch * facts.last_inputs)
                graph = 8.0 * facts.last_params + samples * 4.0 * (facts.last_inputs + 2 * dataset_info(run["dataset"]).num_classes)
                jobs.append(Job("large_batch_spectrum", run, "large_batch_spectrum_last_layer",
                                [{"basis": dense, "extra": lanes + graph}]))
            jobs.append(Job("large_batch_landscape", run, "large_batch_landscape",
                            [{"extra": min(land["batch_size"], samples) * facts.eval_act + 16.0 * facts.params}]))
        elif run["study"] == "sharpest_directions":
            spec = study["spectrum"]
            jobs.append(Job("sharpest_directions_trajectory", run, "trajectory",
                            [{"graphs": (samples, spec["batch_size"]), "basis": topk_basis(facts.params, spec["max_steps"])}]))
        elif run["study"] == "hessianflow":
            eigen, final = study["eigen"], study["final"]
            jobs.append(Job("hessianflow_eigen", run, "hessianflow_eigen",
                            [{"graphs": (samples, eigen["batch_size"]), "basis": topk_basis(facts.params, eigen["max_steps"])}]))
            slq = 8.0 * facts.params * final["density_probes"] * (final["density_steps"] + 1)
            jobs.append(Job("hessianflow_final", run, "hessianflow_final",
                            [{"graphs": (samples, final["batch_size"]), "lanes": max(PROBE_BATCH, final["density_probes"]),
                              "basis": max(slq, PROBE_BATCH * 8.0 * facts.params)}]))
        elif run["study"] == "init_chain_rule":
            track = study["tracking"]
            jobs.append(Job("init_chain_rule_track", run, "chain_rule",
                            [{"graphs": (samples, track["batch_size"]), "lanes": PROBE_BATCH,
                              "basis": topk_basis(facts.params, track["max_steps"])}]))
    return jobs


def job_memory(
    job: Job, sizes: dict, device: str, free: float, base: float, nsgd_steps: int | None = None
) -> dict[str, float]:
    """Bytes of each term of ``job`` (module docstring) at its largest phase; ``loading`` is training's peak while
    it loads its splits, before anything else exists. ``nsgd_steps``: the most Lanczos steps NSGD took in an epoch
    (default: its ``max_steps``)."""
    run, facts = job.run, model_facts(job.run)
    terms = {"base": base, "loading": 0.0, "data": 0.0, "weights": 0.0}
    phases = []  # (activations, graphs, basis) of each phase: one at a time
    if job.rule == "train":
        n_train, n_test = sizes[run["dataset"]]
        terms["data"] = (n_train + n_test) * _sample_bytes(run)
        terms["loading"] = LOAD_PEAK * terms["data"]
        momentum = run["momentum"] > 0 or run["optimizer"]["name"] == "absa"
        terms["weights"] = 4.0 * facts.params * (2 + momentum)
        evaluation = min(EVAL_BATCH, n_train) * EVAL_LIVE * facts.eval_act
        phases.append((max(run["batch_size"] * facts.train_act, evaluation), 0.0, 0.0))
        optimizer = run["optimizer"]
        if optimizer["name"] == "nsgd":  # its per-epoch Lanczos on the Hessian subset
            steps = nsgd_steps or optimizer.get("max_steps", NSGD_MAX_STEPS)
            basis = topk_basis(facts.params, steps) + 2 * 8.0 * facts.params * optimizer["kk"]
            phases.append((0.0, graphs(facts, subset_size(run), NSGD_BATCH, 1, free / 2), basis))
        elif optimizer["name"] == "absa":  # its power iteration on eig_batch training samples
            eig = {**ABSA_DEFAULTS, **optimizer}["eig_batch"]
            phases.append((0.0, graphs(facts, eig, eig, 1, free / 2), 8.0 * 4 * facts.params))
    else:
        terms["weights"] = _curvature_weights(run, facts)
        terms["data"] = subset_size(run) * _sample_bytes(run)
        for phase in job.phases:
            samples, batch = phase.get("graphs", (0, 1))
            lanes = min(phase.get("lanes", 1), LANES[device])
            graph = graphs(facts, samples, batch, lanes, free / 2) if samples else 0.0
            phases.append((phase.get("extra", 0.0), graph, phase.get("basis", 0.0)))
    terms["activations"], terms["graphs"], terms["basis"] = max(phases, key=sum)
    return terms


def host_and_device(terms: dict, device: str) -> tuple[float, float]:
    """(host bytes, device bytes) of a job's terms. On the CPU everything is on the host, and training's loading
    comes before the rest; on CUDA the host keeps the base, the CUDA runtime, the loading and a checkpoint's copy."""
    on_device = sum(terms[name] for name in DEVICE_TERMS)
    if device == "cpu":
        return terms["base"] + max(terms["loading"], on_device), 0.0
    return terms["base"] + CUDA_HOST + max(terms["loading"], terms["weights"]), on_device


def check_rows(workdir: Path, base: float, rules: tuple[str, ...] | None = None) -> list[tuple]:
    """(rule, predicted, peak, Snakemake's sampled max_rss) bytes of every measured job of the rehearsal in
    ``workdir`` (of ``rules``); the peak is what the job logged at exit, else the sampled one."""
    config = yaml.safe_load((workdir / "paper-rehearsal.yaml").read_text())
    sizes = split_sizes(workdir)
    free = float(psutil.virtual_memory().available)
    peaks = {(job["key"], job["name"]): (job["peak"], float(job["max_rss"]) * MB)
             for jobs in rule_jobs(workdir / "results").values() for job in jobs}
    rows = []
    for job in jobs_of(config):
        peak, sampled = peaks.get((job.run["key"], job.name), (None, None))
        if peak is None or rules is not None and job.rule not in rules:
            continue
        steps = None
        if job.rule == "train" and job.run["optimizer"]["name"] == "nsgd":
            history = pd.read_csv(workdir / layout.run_files(job.run["key"]).history, sep="\t")
            steps = int(history["nsgd_lanczos_steps"].max())
        predicted = host_and_device(job_memory(job, sizes, "cpu", free, base, steps), "cpu")[0]
        rows.append((job.rule, predicted, peak, sampled))
    return rows


def second_size_targets(config: dict) -> list[str]:
    """One job of every curvature rule per model family at the second size (SGD runs: their training is shared
    with the rehearsal's), the cheapest family where a rule has several."""
    runs = [run for run in plan_runs(config, SCHEMA).values() if run["optimizer"]["name"] == "sgd"]
    first = {}
    for run in runs:
        first.setdefault((run["study"], run["model"]), run["key"])
    targets = []
    for (study, model), key in first.items():
        if study == "layerhessians" and model in SECOND_SIZE_MODELS:
            targets.append(layout.layer_spectrum(key, 1, "tsv"))
        elif study == "large_batch":
            targets += [layout.final_spectrum(key, "full", "tsv"), layout.final_spectrum(key, "last_layer", "tsv"),
                        layout.landscape(key)]
        elif study == "sharpest_directions":
            targets.append(layout.trajectory(key))
        elif study == "hessianflow":
            targets += [layout.dominant_eigen(key), layout.final_trace_density(key, "tsv")]
        elif study == "init_chain_rule":
            targets.append(layout.chain_rule(key))
    return targets


def make_second_size(rehearsal: Path, out: Path) -> None:
    """The second size: a hard-linked copy of a finished rehearsal, rehearsed anew at ``SECOND_SCALE`` (training
    unchanged, so shared) and ``second_size_targets`` rebuilt there with their benchmark files."""
    from hessian_spectra.cli import main as cli

    if not out.exists():  # Snakemake deletes a job's outputs and logs before it runs, but rewrites its metadata in place
        subprocess.run(["cp", "-al", str(rehearsal), str(out)], check=True)
        subprocess.run(["rm", "-rf", str(out / ".snakemake")], check=True)
        subprocess.run(["cp", "-a", str(rehearsal / ".snakemake"), str(out / ".snakemake")], check=True)
    for stale in (out / "results" / "benchmarks", out / ".snakemake" / "locks"):
        subprocess.run(["rm", "-rf", str(stale)], check=True)
    configfile = out / "paper-rehearsal.yaml"
    assert cli(["rehearse", str(REPO / "configs" / "paper.yaml"), "--out", str(configfile), "--schema",
                str(REPO / "workflow" / "schemas" / "config.schema.yaml"), *SECOND_SCALE]) == 0
    command = [sys.executable, "-m", "snakemake", *second_size_targets(yaml.safe_load(configfile.read_text())),
               "--snakefile", str(REPO / "Snakefile"), "--directory", str(out), "--cores", "2", "--rerun-incomplete",
               "--rerun-triggers", "mtime", "input", "--configfile", str(configfile)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(out / "md5-site"), os.environ.get("PYTHONPATH")]))}
    subprocess.run(command, check=True, env=env)


def _gib(nbytes: float) -> str:
    return f"{nbytes / GB:.2f}"


def _paper_rows(config: dict, gpu_gb: float, cpu_gb: float, base: float) -> dict[str, list]:
    """Per rule, for every job of the paper config: (model, host GB job, its GPU bytes, the same without cached
    graphs, a CPU-only job's bytes, the GPU job's terms)."""
    by_rule: dict[str, list] = {}
    for job in jobs_of(config):
        terms = job_memory(job, SPLIT_SIZES, "cuda", gpu_gb * GB, base)
        host, device = host_and_device(terms, "cuda")
        lean = host_and_device(job_memory(job, SPLIT_SIZES, "cuda", 0.0, base), "cuda")[1]
        cpu = host_and_device(job_memory(job, SPLIT_SIZES, "cpu", cpu_gb * GB, base), "cpu")[0]
        by_rule.setdefault(job.rule, []).append((job.run["model"], host, device, lean, cpu, terms))
    return by_rule


def report(args: argparse.Namespace) -> str:
    """The Markdown report: the memory model checked against the rehearsals' peak RSS, and the paper DAG's needs."""
    base = base_bytes()
    checks = {"rehearsal": check_rows(args.rehearsal, base)}
    if args.check:
        curvature = tuple(job.rule for job in jobs_of(load_yaml(args.config)) if job.rule != "train")
        checks["second size"] = check_rows(args.check, base, curvature)  # its training is the rehearsal's
    lines = [
        "# Peak memory per rule: measured on the rehearsal, modelled for the paper DAG",
        "",
        f"`python benchmarks/paper_memory.py` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d} ({_cpu_name()}, "
        f"{psutil.cpu_count()} cores): the model of the module docstring of benchmarks/paper_memory.py, checked against "
        "the peak RSS of every compute job of the paper rehearsal "
        f"(`tests/test_paper_rehearsal.py` in `{args.rehearsal}`, CPU)"
        + (f" and of jobs rebuilt at a second size (`{args.check}`: `hessian-spectra rehearse` with "
           f"`{' '.join(SECOND_SCALE)}`)" if args.check else "")
        + f". A job's imports take {base / MB:.0f} MB here.",
        "",
        "## The model against measured peaks (CPU: everything on the host; GiB)",
        "",
    ]
    rows, worst = [], {}
    for size, entries in checks.items():
        for rule in sorted({entry[0] for entry in entries}):
            mine = [entry[1:] for entry in entries if entry[0] == rule]
            ratios = [m / p for p, m, _ in mine]
            worst[rule] = max(worst.get(rule, 1.0), *ratios)
            rows.append([size, rule, len(mine), _gib(max(m for _, m, _ in mine)), _gib(max(s for *_, s in mine)),
                         _gib(max(p for p, _, _ in mine)), f"{min(ratios):.2f} to {max(ratios):.2f}"])
    lines += table(["size", "rule", "jobs", "largest peak GiB", "largest Snakemake max_rss GiB", "largest predicted GiB",
                    "peak / predicted"], rows)
    lines += [
        "",
        "*peak*: the kernel's peak RSS each job logged at exit (`resource use:` in its log); Snakemake's `max_rss` "
        "samples every 0.5 s for 15 s, then every 30 s, and misses the peaks of longer jobs.",
    ]
    measured_peak = {}
    for rule, _, peak, _ in checks["rehearsal"]:
        measured_peak[rule] = max(measured_peak.get(rule, 0.0), peak)
    by_rule = _paper_rows(load_yaml(args.config), args.gpu_gb, args.cpu_gb, base)
    lines += [
        "",
        f"## The paper DAG (`{args.config.relative_to(REPO)}`, `device: cuda`), per rule: its largest job",
        "",
        f"*Host*: a GPU job's host memory (the imports, a {CUDA_HOST / GB:.0f} GB allowance for the CUDA runtime, not "
        "measured: no GPU here; training's splits while they load; a checkpoint's copy). *GPU*: its device memory with "
        f"the cached graphs filling up to half of a {args.gpu_gb:g} GB GPU (the default memory budget), and with "
        "`memory_budget_mb: 0` (one batch's graph at a time: what must fit). *CPU-only*: the whole peak of the same "
        f"job with `device: cpu` (graphs within half of {args.cpu_gb:g} GB). *Requested*: the SLURM profile's "
        f"`mem_mb`: the host peak x the rule's worst measured / predicted above (at least 1) x {REQUEST_MARGIN:g}, "
        "in whole GiB (Slurm counts `mem_mb` in MiB).",
        "",
    ]
    rows, args.requests = [], {}
    for rule, entries in sorted(by_rule.items()):
        host, gpu, lean, cpu = (max(entries, key=lambda e: e[i]) for i in (1, 2, 3, 4))
        request = math.ceil(REQUEST_MARGIN * worst.get(rule, 1.0) * host[1] / GB) * 1024  # MiB, as Slurm counts
        args.requests[rule] = request
        rows.append([rule, len(entries), _gib(measured_peak.get(rule, math.nan)), f"{_gib(host[1])} ({host[0]})",
                     f"{_gib(gpu[2])} ({gpu[0]})", f"{_gib(lean[3])} ({lean[0]})", f"{_gib(cpu[4])} ({cpu[0]})",
                     request])
    lines += table(["rule", "jobs", "measured at rehearsal size, GiB", "paper: host GiB", "paper: GPU GiB",
                    "paper: GPU GiB, no cached graphs", "paper: CPU-only GiB", "requested mem_mb"], rows)
    lines += ["", "Terms of each rule's largest GPU job (GiB; module docstring; Lanczos at its `max_steps`):", ""]
    rows = []
    for rule, entries in sorted(by_rule.items()):
        model, *_, terms = max(entries, key=lambda e: e[2])
        rows.append([rule, model] + [_gib(terms[name]) for name in ("base", "loading", *DEVICE_TERMS)])
    lines += table(["rule", "model", "imports (host)", "loading (host)", "data", "weights", "activations", "graphs",
                    "basis"], rows)
    over = sorted(
        (rule, model, lean)
        for rule, entries in by_rule.items()
        for model, lean in {e[0]: max(x[3] for x in entries if x[0] == e[0]) for e in entries}.items()
        if lean > 16 * GB
    )
    lines += [
        "",
        "Over a 16 GB GPU even without cached graphs: "
        + ("; ".join(f"{rule} on {model}: {_gib(gb)} GiB" for rule, model, gb in over) if over else "none")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``benchmarks/paper_memory.py``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rehearsal", type=Path, required=True, help="a finished rehearsal's working directory")
    parser.add_argument("--check", type=Path, default=None, help="a second rehearsal, at another size")
    parser.add_argument("--make-check", action="store_true",
                        help="first make --check from --rehearsal: a copy rebuilt at the second size")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "paper.yaml")
    parser.add_argument("--gpu-gb", type=float, default=16.0, help="GPU memory the graphs may take half of")
    parser.add_argument("--cpu-gb", type=float, default=64.0, help="host memory of a CPU-only job's node")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "PAPER_MEMORY.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Make the second-size rehearsal if asked (``--make-check``), then write the report to ``--out`` and print it."""
    args = parse_args(argv)
    args.config = args.config.resolve()
    if args.make_check:
        make_second_size(args.rehearsal, args.check)
    text = report(args)
    args.out.write_text(text)
    print(text)
    print("mem_mb requests:", args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
