"""configs/cpu.yaml, the overlay that makes every claim decidable on 2 CPU cores: 3 seeds, the budgets the findings
rules need, and real MNIST digits wherever a source used MNIST or FashionMNIST."""

import copy

from snakemake.utils import update_config

from conftest import REPO
from hessian_spectra.runs import load_yaml, plan_runs

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def cpu_runs() -> list[dict]:
    """The runs `--configfile config.yaml configs/cpu.yaml` plans (Snakemake merges the files key by key)."""
    config = copy.deepcopy(load_yaml(REPO / "config.yaml"))
    update_config(config, load_yaml(REPO / "configs" / "cpu.yaml"))
    assert config["name"] == "cpu"
    return list(plan_runs(config, SCHEMA).values())


def test_every_run_over_three_seeds_and_mnist5k_where_the_source_used_mnist():
    runs = cpu_runs()
    configurations = {(run["study"], run["variant"], run["model"], run["dataset"], run["batch_size"]) for run in runs}
    assert len(runs) == 3 * len(configurations)
    assert {run["seed"] for run in runs} == {0, 1, 2}
    by_study = {}
    for run in runs:
        by_study.setdefault(run["study"], set()).add(run["dataset"])
    for study in ("sharpest_directions", "hessianflow", "init_chain_rule", "layerhessians"):
        assert by_study[study] == {"mnist5k"}, study


def test_the_budgets_the_rules_need():
    runs = cpu_runs()
    large = [run for run in runs if run["study"] == "large_batch"]
    assert len({run["epochs"] * run["steps_per_epoch"] for run in large}) == 1  # every batch size the same steps
    sharpest = [run for run in runs if run["study"] == "sharpest_directions"]
    assert all(run["epochs"] >= 6 and run["valid_size"] >= 1000 for run in sharpest)  # two 3-epoch windows
    layers = [run for run in runs if run["study"] == "layerhessians"]
    assert all(run["epochs"] >= 9 for run in layers)  # a peak window, and a last one that does not overlap it
    absa = [run for run in runs if run["optimizer"]["name"] == "absa"]
    assert absa and all(run["optimizer"]["max_ratio"] >= 16 for run in absa)
