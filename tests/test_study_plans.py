"""Parse-time planning of the studies and of training: runs grouped by figure or rule, figure names, config checks."""

import subprocess
import sys

import pytest

from conftest import REPO
from hessian_spectra.models.catalog import layer_block_count
from hessian_spectra.runs import ConfigError, load_yaml, plan_runs, runs_of, with_defaults
from hessian_spectra.studies.init_chain_rule import plan as init_chain_rule
from hessian_spectra.studies.large_batch import plan as large_batch
from hessian_spectra.studies.layerhessians import plan as layerhessians
from hessian_spectra.train.plan import variants_by_epochs

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
DIGITS = {"dataset": "digits", "image_size": 8, "batch_size": 32, "lr": 0.01, "seed": 0}


def study_config(study: str, runs: list[dict], **settings) -> dict:
    """A config of one study on digits: ``runs`` over the shared defaults, ``settings`` added to the study."""
    return {"studies": {study: {"defaults": {**DIGITS, "epochs": 2}, "runs": runs, "hessian_subset": {"size": 16},
                                **settings}}}


def planned(config: dict, study: str) -> list[dict]:
    return runs_of(plan_runs(config, SCHEMA), study)


def plan_layerhessians(config: dict) -> layerhessians.LayerHessiansPlan:
    settings = with_defaults(config, SCHEMA)["studies"]["layerhessians"]
    return layerhessians.plan(planned(config, "layerhessians"), settings)


def test_plans_import_no_torch():
    modules = ["hessian_spectra.studies.layerhessians.plan", "hessian_spectra.studies.init_chain_rule.plan",
               "hessian_spectra.studies.large_batch.plan", "hessian_spectra.train.plan"]
    code = f"import sys; [__import__(m) for m in {modules!r}]; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- layerhessians


LENET = {"model": "lenet", "model_options": {"width": 0.5}}
MLP = {"model": "mlp", "model_options": {"hidden": [8]}}


def test_layerhessians_groups_seeds_by_figure_and_counts_ascending():
    config = study_config("layerhessians", [LENET, {**MLP, "epochs": 3}], seeds=2)
    runs = planned(config, "layerhessians")
    plan = plan_layerhessians(config)
    assert list(plan.by_name) == ["lenet_digits", "mlp_digits"]
    assert plan.by_name["lenet_digits"] == [run for run in runs if run["model"] == "lenet"]
    assert [run["seed"] for run in plan.by_name["mlp_digits"]] == [0, 1]
    lenet_blocks, mlp_blocks = layer_block_count("lenet", {"width": 0.5}), layer_block_count("mlp", {"hidden": [8]})
    assert mlp_blocks < lenet_blocks
    assert list(plan.layer_counts.items()) == [(mlp_blocks, ["mlp_digits"]), (lenet_blocks, ["lenet_digits"])]
    assert list(plan.spectrum_files) == [run["key"] for run in runs]
    mlp_key = plan.by_name["mlp_digits"][1]["key"]
    assert plan.spectrum_files[mlp_key] == [
        f"results/tables/{mlp_key}/layer_spectra/epoch_{epoch:04d}.npz" for epoch in range(4)
    ]
    assert plan.figures() == ["match_distros_wasserstein.png", "match_distros_peak.png"] + [
        f"training_eigvals_epochwise_mlp_digits_{layer}.png" for layer in range(1, mlp_blocks + 1)
    ] + [f"training_eigvals_epochwise_lenet_digits_{layer}.png" for layer in range(1, lenet_blocks + 1)]


def test_layerhessians_epochwise_figure_pattern():
    assert layerhessians.epochwise_figures("{name}", 2) == [
        "training_eigvals_epochwise_{name}_1.png",
        "training_eigvals_epochwise_{name}_2.png",
    ]


def test_layerhessians_counts_listed_layer_blocks():
    run = {"model": "pkg.nets:tiny_net", "dataset": "resources/images/digits", "epochs": 1,
           "key": "layerhessians/runs/tiny_net/resources-images-digits/bs8/seed0/own", "layer_blocks": ["a", "b"]}
    plan = layerhessians.plan([run], {"matching": {"peak_epoch": {}}})
    assert plan.layer_counts == {2: ["tiny_net_resources-images-digits"]}


def test_layerhessians_without_runs_reads_no_settings():
    plan = layerhessians.plan([], {})
    assert (plan.by_name, plan.spectrum_files, plan.layer_counts) == ({}, {}, {})
    assert plan.figures() == ["match_distros_wasserstein.png", "match_distros_peak.png"]


def test_layerhessians_accepts_a_peak_at_the_last_epoch():
    config = study_config("layerhessians", [LENET], matching={"peak_epoch": {"lenet/digits": 2}})
    assert list(plan_layerhessians(config).by_name) == ["lenet_digits"]


def test_layerhessians_refuses_runs_of_one_figure_that_differ_in_more_than_seed():
    config = study_config("layerhessians", [LENET, {**LENET, "lr": 0.02}])
    first, second = (run["key"] for run in planned(config, "layerhessians"))
    with pytest.raises(ConfigError) as err:
        plan_layerhessians(config)
    assert str(err.value) == (
        f"studies.layerhessians: results/{first} and results/{second} have the same model and dataset but differ "
        "in more than their seed, and this study's figures are named by model and dataset; keep one of them (run "
        "the other with its own config)"
    )


def test_layerhessians_refuses_a_peak_epoch_of_no_run():
    config = study_config("layerhessians", [LENET, MLP], matching={"peak_epoch": {"lenet/mnist": 1}})
    with pytest.raises(ConfigError) as err:
        plan_layerhessians(config)
    assert str(err.value) == (
        "studies.layerhessians.matching.peak_epoch.lenet/mnist: no such run (runs: lenet/digits, mlp/digits)"
    )


def test_layerhessians_refuses_a_peak_epoch_past_the_last():
    config = study_config("layerhessians", [LENET], matching={"peak_epoch": {"lenet/digits": 3}})
    with pytest.raises(ConfigError) as err:
        plan_layerhessians(config)
    assert str(err.value) == (
        "studies.layerhessians.matching.peak_epoch.lenet/digits: epoch 3 is past the run's last epoch 2"
    )


# --- init_chain_rule


def test_init_chain_rule_sds_in_config_order_once_each():
    runs = [{"model": "mlp", "model_options": {"init_sd": sd}} for sd in (1.0, 1e-5, 0.01)]
    runs.append({**runs[0], "lr": 0.02})
    plan = init_chain_rule.plan(planned(study_config("init_chain_rule", runs, seeds=2), "init_chain_rule"))
    assert plan.sds == [1.0, 1e-5, 0.01]
    assert plan.sd_figures == ["init_sd_1.png", "init_sd_1e-05.png", "init_sd_0.01.png"]
    assert plan.figures() == plan.sd_figures + ["init_sd_all.png", "chain_rule_terms.png"]


def test_init_chain_rule_without_runs_has_only_the_shared_figures():
    plan = init_chain_rule.plan([])
    assert plan.sds == [] and plan.figures() == ["init_sd_all.png", "chain_rule_terms.png"]


def test_init_chain_rule_refuses_runs_without_an_init_sd():
    runs = [{"model": "mlp"}, {"model": "mlp", "model_options": {"init_sd": 0.1}}, {"model": "mlp", "lr": 0.02}]
    planned_runs = planned(study_config("init_chain_rule", runs), "init_chain_rule")
    with pytest.raises(ConfigError) as err:
        init_chain_rule.plan(planned_runs)
    assert f"invalid config: {err.value}" == (
        f"invalid config: studies.init_chain_rule: run(s) {planned_runs[0]['key']}, {planned_runs[2]['key']} set no "
        "model_options.init_sd (the study's figures are one per init sd)"
    )


# --- large_batch


def large_batch_runs() -> list[dict]:
    return planned(study_config("large_batch", [{"model": "c1", "grid": {"batch_size": [256, 64]}}], seeds=2),
                   "large_batch")


def test_large_batch_groups_keys_by_batch_size_ascending():
    runs = large_batch_runs()
    plan = large_batch.plan(runs)
    assert plan.by_size == {size: [run["key"] for run in runs if run["batch_size"] == int(size)]
                            for size in ("64", "256")}
    assert list(plan.by_size) == ["64", "256"] and all(len(keys) == 2 for keys in plan.by_size.values())
    assert plan.figures() == ["hessian_spectral.png", "loss_surface_bs64.png", "loss_surface_bs256.png"]
    assert large_batch.surface_figure("{batch_size}") == "loss_surface_bs{batch_size}.png"


def test_large_batch_surface_runs_of_a_planned_size():
    plan = large_batch.plan(large_batch_runs())
    assert plan.surface_runs("256") == plan.by_size["256"]


def test_large_batch_surface_of_an_unplanned_size_names_the_planned_ones():
    with pytest.raises(ValueError) as err:
        large_batch.plan(large_batch_runs()).surface_runs("128", "mine")
    assert str(err.value) == (
        "results/configs/mine/figures/large_batch/loss_surface_bs128.png: batch size 128 is not in this config's large_batch runs; its batch sizes: 64, 256"
    )
    with pytest.raises(ValueError, match=r"its batch sizes: none \(the study is off\)$"):
        large_batch.plan([]).surface_runs("64")


# --- training


def test_training_variants_by_epoch_count_ascending():
    config = study_config("hessianflow", [{"model": "c1", "epochs": 3, "name": "b"}, {"model": "c1", "lr": 0.02},
                                          {"model": "c1", "epochs": 3, "name": "a"}])
    (two_epochs,) = (run["variant"] for run in plan_runs(config, SCHEMA).values() if run["epochs"] == 2)
    variants = variants_by_epochs(plan_runs(config, SCHEMA).values())
    assert list(variants.items()) == [(2, [two_epochs]), (3, ["a", "b"])]


def test_training_refuses_a_variant_name_of_two_epoch_counts():
    config = study_config("hessianflow", [{"model": "c1", "name": "x"}, {"model": "c1", "name": "y"}])
    config["studies"]["init_chain_rule"] = study_config(
        "init_chain_rule", [{"model": "mlp", "model_options": {"init_sd": 0.1}, "epochs": 3, "name": name}
                            for name in ("y", "x")])["studies"]["init_chain_rule"]
    with pytest.raises(ConfigError) as err:
        variants_by_epochs(plan_runs(config, SCHEMA).values())
    assert str(err.value) == "runs named x, y train for different numbers of epochs; give them distinct `name`s"
