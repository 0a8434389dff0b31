"""Config handling: defaults, grids, run directories, and bad configs stopping before any job runs."""

import copy

import pytest

from conftest import REPO, snakemake, write_config
from hessian_spectra.runs import ConfigError, check_config, load_yaml, plan_runs, variant_name

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _study(**runs_and_defaults) -> dict:
    study = {"defaults": {"dataset": "digits", "epochs": 2, "lr": 0.01, "batch_size": 16}, "runs": [{"model": "lenet"}]}
    study.update(runs_and_defaults)
    study.setdefault("hessian_subset", {"split": "train", "per_class": 10, "size": None, "selection": "random", "seed": 0})
    return {"studies": {"layerhessians": study}}


def test_defaults_filled_and_run_key():
    runs = plan_runs(_study(), SCHEMA)
    (key, run), = runs.items()
    assert key == "layerhessians/runs/lenet/digits/bs16/seed0/sgd-lr0.01-m0.9-wd0"
    assert run["momentum"] == 0.9 and run["schedule"] == {"kind": "constant"} and run["image_size"] == 32
    assert run["hessian_subset"]["per_class"] == 10


def test_grid_expands_to_one_run_per_combination():
    config = _study(runs=[{"model": "mlp", "grid": {"lr": [0.1, 0.01], "model_options.init_sd": [1.0, 0.01]}}])
    runs = plan_runs(config, SCHEMA)
    assert len(runs) == 4
    assert {(r["lr"], r["model_options"]["init_sd"]) for r in runs.values()} == {(0.1, 1.0), (0.1, 0.01), (0.01, 1.0), (0.01, 0.01)}
    assert len({r["variant"] for r in runs.values()}) == 4


def test_runs_differing_outside_the_path_must_be_named():
    config = _study(runs=[{"model": "lenet", "epochs": 2}, {"model": "lenet", "epochs": 3}])
    with pytest.raises(ConfigError, match=r"runs\[1\].*distinct `name`"):
        plan_runs(config, SCHEMA)
    config["studies"]["layerhessians"]["runs"][1]["name"] = "longer"
    assert len(plan_runs(config, SCHEMA)) == 2


def test_variant_names_nsgd_options():
    run = {"optimizer": {"name": "nsgd", "gamma": 0.1, "kk": 5}, "lr": 0.01, "momentum": 0.0, "l2": 0.0,
           "schedule": {"kind": "constant"}, "model_options": {"width": 0.5}}
    assert variant_name(run) == "nsgd-lr0.01-m0-wd0-gamma0.1-kk5-width0.5"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["studies"]["layerhessians"]["runs"][0].update(model="lenet5"),
         r"studies\.layerhessians\.runs\[0\]\.model: 'lenet5' is not one of \['lenet'"),
        (lambda c: c["studies"]["layerhessians"]["defaults"].update(dataset="imagenet"),
         r"studies\.layerhessians\.defaults\.dataset: 'imagenet' is not one of \['digits'"),
        (lambda c: c["studies"]["layerhessians"]["defaults"].update(batch_size=0),
         r"studies\.layerhessians\.defaults\.batch_size: 0 is less than the minimum of 1"),
        (lambda c: c["studies"]["layerhessians"]["runs"][0].update(batch_size=-8),
         r"studies\.layerhessians\.runs\[0\]\.batch_size: -8 is less than the minimum of 1"),
        (lambda c: c["studies"]["layerhessians"]["runs"][0].update(batchsize=8),
         r"studies\.layerhessians\.runs\[0\]: .*'batchsize' was unexpected.*allowed keys: .*batch_size"),
        (lambda c: c["studies"].update(layerhesians=c["studies"].pop("layerhessians")),
         r"studies: .*'layerhesians' was unexpected.*allowed keys: .*layerhessians"),
        (lambda c: c.update(device="tpu"), r"device: 'tpu' is not one of \['cpu', 'cuda'\]"),
        (lambda c: c.pop("studies"), r"'studies' is a required property"),
    ],
    ids=["unknown-model", "unknown-dataset", "batch-size-zero", "batch-size-negative", "misspelt-key",
         "unknown-study", "unknown-device", "missing-studies"],
)
def test_schema_errors_name_the_key(mutate, message):
    config = copy.deepcopy(_study())
    mutate(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config, SCHEMA)


def test_missing_run_key_and_bad_model_option():
    config = _study()
    del config["studies"]["layerhessians"]["defaults"]["lr"]
    with pytest.raises(ConfigError, match=r"runs\[0\]: missing key\(s\) lr"):
        plan_runs(config, SCHEMA)
    config = _study(runs=[{"model": "lenet", "model_options": {"widht": 0.5}}])
    with pytest.raises(ConfigError, match=r"model_options\.widht: not an option of lenet; allowed: width"):
        plan_runs(config, SCHEMA)


def test_grid_value_checked_after_merge():
    config = _study(runs=[{"model": "lenet", "grid": {"batch_size": [8, 0]}}])
    with pytest.raises(ConfigError, match=r"runs\[0\]\.batch_size: 0 is less than the minimum of 1"):
        plan_runs(config, SCHEMA)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["studies"]["layerhessians"]["runs"][0].update(model="lenet5"),
         "studies.layerhessians.runs[0].model: 'lenet5' is not one of"),
        (lambda c: c["studies"]["large_batch"]["runs"][0].update(grid={"batch_size": [0]}),
         "studies.large_batch.runs[0].batch_size: 0 is less than the minimum of 1"),
        (lambda c: c["studies"]["hessianflow"]["defaults"].pop("lr"),
         "studies.hessianflow.runs[0]: missing key(s) lr"),
        (lambda c: c["studies"].update(init_chain=c["studies"].pop("init_chain_rule")),
         "'init_chain' was unexpected"),
    ],
    ids=["unknown-model", "zero-batch-in-grid", "missing-lr", "unknown-study"],
)
def test_snakemake_stops_before_any_job(tmp_path, default_config, mutate, message):
    mutate(default_config)
    result = snakemake(tmp_path, "-n", configfile=write_config(tmp_path / "bad.yaml", default_config))
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "invalid config" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()
