"""The paper DAG's cost model (benchmarks/paper_cost.py): FLOP counts against hand-computed ones, and a plan that
covers every compute rule of the paper config."""

import math

import yaml

from benchmarks.paper_cost import GRADIENT, PRODUCT, SPLIT_SIZES, absa_ratios, config_costs, model_facts, train_cost
from conftest import REPO

MLP_RUN = {
    "model": "mlp",
    "model_options": {},
    "dataset": "mnist",
    "image_size": 28,
    "epochs": 20,
    "steps_per_epoch": 50,
    "batch_size": 32,
    "valid_size": 0,
    "optimizer": {"name": "sgd"},
    "subset": {"size": 1024, "per_class": None},
}


def test_forward_flops_of_the_mlp_are_its_matmuls():
    forward, block_lanes, last_params = model_facts(MLP_RUN)
    assert forward == 2 * (784 * 30 + 30 * 30 + 30 * 10)
    # each block's lane runs from its layer to the output: all of it, then the last two matmuls, then the last
    matmuls = [784 * 30, 30 * 30, 30 * 10]
    assert math.isclose(block_lanes, (sum(matmuls) + sum(matmuls[1:]) + matmuls[2]) / sum(matmuls))
    assert last_params == 30 * 10 + 10


def test_training_costs_its_gradients_and_evaluations():
    forward = 2 * (784 * 30 + 30 * 30 + 30 * 10)
    n_train, n_test = SPLIT_SIZES["mnist"]
    # the training split is evaluated at epoch 0 only (later epochs take its loss from the training pass itself)
    expected = (20 * 50 * 32 * GRADIENT + n_train + 21 * n_test) * forward
    cost = train_cost(MLP_RUN, observed={})
    assert math.isclose(cost.typical, expected) and math.isclose(cost.bound, expected)
    small = train_cost(MLP_RUN, observed={}, sizes={"mnist": (400, 200)})
    assert math.isclose(small.typical, (20 * 50 * 32 * GRADIENT + 400 + 21 * 200) * forward)


def test_absa_batch_grows_by_patience_and_its_checks_stop_at_the_cap():
    run = {**MLP_RUN, "epochs": 8, "steps_per_epoch": 1, "batch_size": 128,
           "optimizer": {"name": "absa", "max_ratio": 128, "patience": 1, "eig_batch": 64, "adv_ratio": 0.2}}
    assert absa_ratios(run) == [1, 2, 4, 8, 16, 32, 64, 128]
    forward = model_facts(run)[0]
    n_train, n_test = SPLIT_SIZES["mnist"]
    seen = 128 * 255
    adversarial = 128 * (1 + 2 + 4)  # epochs 1..3, before epochs / 2
    expected = seen * GRADIENT + n_train + 9 * n_test + 7 * 10 * 64 * PRODUCT + 0.2 * adversarial * GRADIENT
    assert math.isclose(train_cost(run, observed={}).typical, expected * forward)
    assert absa_ratios({**run, "optimizer": {"name": "absa", "patience": 3}})[:7] == [1, 1, 1, 2, 2, 2, 4]


def test_nsgd_training_adds_its_per_epoch_lanczos_typical_below_bound():
    run = {**MLP_RUN, "optimizer": {"name": "nsgd", "kk": 5, "gamma": 0.1}}
    plain, nsgd = train_cost(MLP_RUN, {}).typical, train_cost(run, {"nsgd": 20.0})
    forward = model_facts(MLP_RUN)[0]
    assert math.isclose(nsgd.typical - plain, 20 * 20.0 * 1024 * PRODUCT * forward)
    assert math.isclose(nsgd.bound - plain, 20 * 100 * 1024 * PRODUCT * forward)


def test_the_paper_plan_costs_every_compute_rule():
    config = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    costs = config_costs(config, observed={})
    rules = {rule for _, rule in costs}
    assert rules == {
        "train", "layerhessians_spectrum", "large_batch_spectrum", "large_batch_landscape", "sharpest_directions_trajectory",
        "hessianflow_eigen", "hessianflow_final", "init_chain_rule_track",
    }
    assert costs[("layerhessians", "layerhessians_spectrum")][0] == 12 * 51  # 12 runs x (init + 50 epochs)
    assert all(cost.typical > 0 and cost.bound >= cost.typical for _, cost in costs.values())
