"""The memory model of benchmarks/paper_memory.py: its byte counts against hand-computed ones and against a real
Lanczos basis, and the SLURM profile requesting what its table of the paper DAG says."""

import re

import torch
import yaml

from benchmarks.paper_memory import (
    GB,
    ModelFacts,
    graphs,
    host_and_device,
    jobs_of,
    topk_basis,
)
from conftest import REPO

FACTS = ModelFacts(params=1000, blocks=2, block_params=900, last_params=110, last_inputs=10, train_act=4e3,
                   eval_act=1e3, graph_fixed=5e4, graph_sample=2e3)


def test_topk_basis_grows_in_blocks_of_32_and_copies_the_old_one():
    assert topk_basis(1000, 5) == 8.0 * 1000 * 6  # max_steps + 1 vectors fit the first block
    assert topk_basis(1000, 100) == 8.0 * 1000 * (101 + 64)  # 32 -> 64 -> 101, the 64 copied into the 101


def test_topk_basis_matches_lanczos_storage():
    from hessian_spectra.curvature.lanczos import _Basis

    basis = _Basis(lanes=1, n=1000, device=torch.device("cpu"), capacity=32, limit=101)
    peak = 0
    for _ in range(101):
        before = basis.buf.numel()
        basis.append(torch.zeros(1, 1000, dtype=torch.float64))
        peak = max(peak, 8 * (basis.buf.numel() + (before if basis.buf.numel() != before else 0)))
    assert peak == topk_basis(1000, 100)


def test_graphs_are_kept_within_the_budget_plus_the_batch_being_built():
    every = 4 * FACTS.graph_fixed + 400 * FACTS.graph_sample
    lanes = 2 * (4.0 * FACTS.params + 100 * 2 * FACTS.eval_act)
    assert graphs(FACTS, 400, 100, lanes=2, budget=1e12) == every + lanes
    one = FACTS.graph_fixed + 100 * FACTS.graph_sample
    assert graphs(FACTS, 400, 100, lanes=2, budget=0.0) == one + lanes


def test_on_cuda_the_host_keeps_the_imports_the_runtime_and_the_loading():
    terms = {"base": 1 * GB, "loading": 3 * GB, "data": 1 * GB, "weights": 0.5 * GB, "activations": 2 * GB,
             "graphs": 4 * GB, "basis": 1 * GB}
    assert host_and_device(terms, "cpu") == (1 * GB + 8.5 * GB, 0.0)
    host, device = host_and_device(terms, "cuda")
    assert device == 8.5 * GB and host == 1 * GB + 2 * GB + 3 * GB


def test_the_paper_plan_has_every_compute_job():
    jobs = jobs_of(yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()))
    counts = {}
    for job in jobs:
        counts[job.rule] = counts.get(job.rule, 0) + 1
    assert counts == {"train": 56, "layerhessians_spectrum": 612, "large_batch_spectrum": 8,
                      "large_batch_landscape": 4, "sharpest_directions_trajectory": 26, "hessianflow_eigen": 5,
                      "hessianflow_final": 5, "init_chain_rule_track": 9}


def test_the_slurm_profile_requests_the_memory_tables_mem_mb():
    text = (REPO / "benchmarks" / "PAPER_MEMORY.md").read_text()
    header, *rows = [line for line in text.splitlines()
                     if "requested mem_mb" in line or re.match(r"\| \w+ \| \d+ \|", line)]
    names = [cell.strip() for cell in header.strip("|").split("|")]
    requested = {cells[0]: int(cells[names.index("requested mem_mb")])
                 for cells in ([cell.strip() for cell in row.strip("|").split("|")] for row in rows)}
    assert set(requested) == {job.rule for job in jobs_of(yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()))}
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert {rule: profile["set-resources"][rule]["mem_mb"] for rule in requested} == requested
    assert profile["resources"]["mem_mb"] >= max(requested.values()), "a Slurm job's limit caps every request"
