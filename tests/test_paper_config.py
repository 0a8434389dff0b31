"""configs/paper.yaml reproduces every figure of every study, and its GPU rules declare one GPU each."""

import re

import pytest
import yaml

from conftest import REPO, snakemake
from hessian_spectra import layout
from hessian_spectra.models.catalog import layer_block_count
from hessian_spectra.runs import load_yaml, plan_runs

PAPER = REPO / "configs" / "paper.yaml"
GPU_RULES = {
    "train", "layerhessians_spectrum", "large_batch_spectrum", "large_batch_landscape", "sharpest_directions_trajectory",
    "hessianflow_eigen", "hessianflow_final", "init_chain_rule_track",
}
LAYERHESSIANS_RUNS = [(m, d) for d in ("mnist", "fashionmnist", "svhn", "cifar10") for m in ("lenet", "vgg11_bn", "resnet18")]

# The figure catalogue (shared/design/FIGURES.md), with its templates filled in from configs/paper.yaml.
CATALOGUE = {
    "large_batch": ["hessian_spectral.png"] + [f"loss_surface_bs{b}.png" for b in (128, 256, 512, 1024)],
    "sharpest_directions": ["spectrum_trajectory.png", "lr_grid.png", "bs_grid.png", "nsgd_gamma.png"],
    "hessianflow": ["dominant_eigenvalue.png", "absa_schedule.png", "esd_final.png"],
    "init_chain_rule": ["init_sd_1e-05.png", "init_sd_0.01.png", "init_sd_1.png", "chain_rule_terms.png"],
    "layerhessians": ["match_distros_wasserstein.png", "match_distros_peak.png"] + [
        f"training_eigvals_epochwise_{model}_{dataset}_{layer}.png"
        for model, dataset in LAYERHESSIANS_RUNS
        for layer in range(1, layer_block_count(model) + 1)
    ],
}


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory):
    """Snakemake's dry run of the paper config with two local GPUs: one block of text per job."""
    workdir = tmp_path_factory.mktemp("paper")
    result = snakemake(workdir, "-n", "--cores", "8", "--resources", "gpu=2", configfile=PAPER, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    blocks = re.split(r"\n(?=[ \t]*(?:local)?rule \w+:\n)", result.stdout)  # group members are indented
    return [block.strip() for block in blocks if re.match(r"\s*(?:local)?rule \w+:", block)]


def _rule(block: str) -> str:
    """The block's rule, the per-epoch-count training rules (train_N_epochs) as `train`."""
    rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
    return "train" if re.fullmatch(r"train_\d+_epochs", rule) else rule


def _outputs(block: str) -> list[str]:
    match = re.search(r"^\s+output: (.+)$", block, flags=re.M)
    return match.group(1).split(", ") if match else []


def test_every_catalogue_figure_is_in_the_paper_dag(paper_plan):
    planned = {output for block in paper_plan for output in _outputs(block)}
    for study, names in CATALOGUE.items():
        missing = [name for name in names if layout.figure(study, name, "paper") not in planned]
        assert not missing, f"{study}: not in the paper DAG: {missing}"
    assert layout.study_table("sharpest_directions", "sharpness_table.csv", "paper") in planned


def test_paper_dag_sizes(paper_plan):
    rules = [_rule(block) for block in paper_plan]
    runs = plan_runs(yaml.safe_load(PAPER.read_text()), load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert rules.count("train") == len(runs)
    assert sum(run["study"] == "layerhessians" for run in runs.values()) == 12
    assert rules.count("layerhessians_spectrum") == 12 * 51


def test_gpu_rules_declare_one_gpu_on_cuda(paper_plan):
    seen = set()
    for block in paper_plan:
        rule = _rule(block)
        resources = re.search(r"^\s+resources: (.+)$", block, flags=re.M)
        gpus = re.search(r"\bgpu=(\d+)", resources.group(1)) if resources else None
        if rule in GPU_RULES:
            assert gpus and gpus.group(1) == "1", f"{rule} must declare gpu=1 on CUDA:\n{block}"
            seen.add(rule)
        else:
            assert not gpus or gpus.group(1) == "0", f"{rule} needs no GPU:\n{block}"
    assert seen == GPU_RULES
