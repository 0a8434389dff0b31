"""Config handling: defaults, grids, run directories, and bad configs stopping before any job runs."""

import copy
import json

import pytest

from conftest import REPO, snakemake, write_config
from hessian_spectra.runs import ConfigError, check_config, load_yaml, plan_runs, plan_subsets, run_json, variant_name
from hessian_spectra.studies import workflow_schema

SCHEMA = workflow_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _study(**runs_and_defaults) -> dict:
    study = {"defaults": {"dataset": "digits", "epochs": 2, "lr": 0.01, "batch_size": 16}, "runs": [{"model": "lenet"}]}
    study.update(runs_and_defaults)
    study.setdefault("hessian_subset", {"split": "train", "per_class": 10, "size": None, "selection": "random", "seed": 0})
    return {"studies": {"layerhessians": study}}


def test_defaults_filled_and_run_key():
    runs = plan_runs(_study(), SCHEMA)
    (key, run), = runs.items()
    assert key == "layerhessians/runs/lenet/digits/bs16/seed0/sgd-lr0.01-m0.9-wd0-e2"
    assert run["momentum"] == 0.9 and run["schedule"] == {"kind": "constant"} and run["image_size"] == 32
    assert run["subset"]["per_class"] == 10 and "hessian_subset" not in run


def test_grid_expands_to_one_run_per_combination():
    config = _study(runs=[{"model": "mlp", "grid": {"lr": [0.1, 0.01], "model_options.init_sd": [1.0, 0.01]}}])
    runs = plan_runs(config, SCHEMA)
    assert len(runs) == 4
    assert {(r["lr"], r["model_options"]["init_sd"]) for r in runs.values()} == {(0.1, 1.0), (0.1, 0.01), (0.01, 1.0), (0.01, 0.01)}
    assert len({r["variant"] for r in runs.values()}) == 4


def test_seeds_repeat_every_run_with_consecutive_seeds():
    config = _study(runs=[{"model": "lenet", "seed": 4}, {"model": "mlp"}], seeds=3)
    config["seeds"] = 2
    runs = plan_runs(config, SCHEMA)
    assert sorted((r["model"], r["seed"]) for r in runs.values()) == [
        ("lenet", 4), ("lenet", 5), ("lenet", 6), ("mlp", 0), ("mlp", 1), ("mlp", 2)]
    lenet = [r for r in runs.values() if r["model"] == "lenet"]
    assert {r["variant"] for r in lenet} == {lenet[0]["variant"]} and len({r["key"] for r in lenet}) == 3
    config["studies"]["layerhessians"].pop("seeds")
    assert sorted(r["seed"] for r in plan_runs(config, SCHEMA).values()) == [0, 1, 4, 5]


def test_the_seeds_overlay_repeats_every_default_run_three_times():
    default = load_yaml(REPO / "config.yaml")
    overlay = load_yaml(REPO / "configs" / "seeds.yaml")
    runs = plan_runs(default, SCHEMA)
    seeded = plan_runs({**default, **overlay}, SCHEMA)
    assert len(seeded) == 3 * len(runs) and set(runs) <= set(seeded)
    assert sorted({run["seed"] for run in seeded.values()}) == [0, 1, 2]


def test_every_training_setting_names_the_run_directory():
    """Runs whose weights can differ never share a directory: epochs, data settings and NSGD's subset included."""
    config = _study(runs=[{"model": "lenet", "epochs": 2}, {"model": "lenet", "epochs": 3},
                          {"model": "lenet", "image_size": 16, "normalization": "center", "valid_size": 100},
                          {"model": "lenet", "optimizer": {"name": "nsgd", "gamma": 0.1, "kk": 2}}])
    variants = [run["variant"] for run in plan_runs(config, SCHEMA).values()]
    assert variants == ["sgd-lr0.01-m0.9-wd0-e2", "sgd-lr0.01-m0.9-wd0-e3",
                        "sgd-lr0.01-m0.9-wd0-e2-img16-center-valid100",
                        "nsgd-lr0.01-m0.9-wd0-gamma0.1-kk2-e2-hstrain-random-pc10-seed0"]


def test_runs_differing_outside_the_path_must_be_named():
    config = _study(runs=[{"model": "lenet", "name": "a"}, {"model": "lenet", "epochs": 3, "name": "a"}])
    with pytest.raises(ConfigError, match=r"runs\[1\].*distinct `name`"):
        plan_runs(config, SCHEMA)
    config["studies"]["layerhessians"]["runs"][1]["name"] = "longer"
    assert len(plan_runs(config, SCHEMA)) == 2


def test_the_hessian_subset_is_planned_apart_from_training():
    """Only NSGD trains on the subset; every run names its subset by what defines it."""
    config = _study(runs=[{"model": "lenet"}, {"model": "lenet", "optimizer": {"name": "nsgd", "gamma": 0.1, "kk": 2}}])
    sgd, nsgd = plan_runs(config, SCHEMA).values()
    assert "hessian_subset" not in json.loads(run_json(sgd)) and "subset" not in json.loads(run_json(sgd))
    assert json.loads(run_json(nsgd))["hessian_subset"]["per_class"] == 10
    assert list(plan_subsets({"a": sgd, "b": nsgd})) == ["digits/32px-unit/train-random-pc10-seed0"]


def test_variant_names_nsgd_options():
    run = {"optimizer": {"name": "nsgd", "gamma": 0.1, "kk": 5}, "lr": 0.01, "momentum": 0.0, "l2": 0.0,
           "epochs": 4, "schedule": {"kind": "step", "milestones": [2, 3], "gamma": 0.1},
           "model_options": {"width": 0.5}, "image_size": 32, "normalization": "unit", "valid_size": 0,
           "augment": True, "steps_per_epoch": None,
           "hessian_subset": {"split": "train", "selection": "first", "size": 64, "per_class": None, "seed": 0}}
    assert variant_name(run) == "nsgd-lr0.01-m0-wd0-gamma0.1-kk5-e4-step-gamma0.1-milestones2x3-width0.5-aug-hstrain-first-n64-seed0"


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
        (lambda c: c["studies"]["layerhessians"].update(seeds=0), r"studies\.layerhessians\.seeds: 0 is less than the minimum of 1"),
    ],
    ids=["unknown-model", "unknown-dataset", "batch-size-zero", "batch-size-negative", "misspelt-key",
         "unknown-study", "unknown-device", "missing-studies", "seeds-zero"],
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
        (lambda c: c.update(memory_budget_mb=-1), "memory_budget_mb: -1 is less than the minimum of 0"),
        (lambda c: c.update(products="reverse"), "products: 'reverse' is not one of"),
    ],
    ids=["unknown-model", "zero-batch-in-grid", "missing-lr", "unknown-study", "negative-memory-budget",
         "unknown-products"],
)
def test_snakemake_stops_before_any_job(tmp_path, default_config, mutate, message):
    mutate(default_config)
    result = snakemake(tmp_path, "-n", configfile=write_config(tmp_path / "bad.yaml", default_config))
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "invalid config" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def test_products_other_than_cached_reach_every_compute_job(tmp_path, default_config):
    """The config's `products` is every training and curvature job's `products` setting; `cached`, the default, adds no
    flag, so that the jobs of existing configs keep their params."""
    commands = {}
    for products in ("cached", "forward"):
        default_config["products"] = products
        result = snakemake(tmp_path, "-n", "-p", configfile=write_config(tmp_path / f"{products}.yaml", default_config))
        assert result.returncode == 0, result.stderr[-2000:]
        commands[products] = [line for line in result.stdout.splitlines() if '"device":"cpu"' in line]
    assert commands["cached"] and not any('"products"' in line for line in commands["cached"])
    assert len(commands["forward"]) == len(commands["cached"])
    assert all('"products":"forward"' in line for line in commands["forward"])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["studies"]["layerhessians"]["runs"][0].update(lr=float("nan")),
         "studies.layerhessians.runs[0].lr: must be a finite number, got nan"),
        (lambda c: c["studies"]["large_batch"]["defaults"].update(momentum=float("inf")),
         "studies.large_batch.defaults.momentum: must be a finite number, got inf"),
        (lambda c: c["studies"]["hessianflow"]["defaults"].update(batch_size=100000),
         "studies.hessianflow.runs[0].batch_size: 100000 is larger than the 1438 training samples of digits"),
        (lambda c: c["studies"]["sharpest_directions"]["defaults"].update(batch_size=1300, steps_per_epoch=None),
         "studies.sharpest_directions.runs[0].batch_size: 1300 is larger than the 1238 training samples"),
        (lambda c: c["studies"]["large_batch"]["hessian_subset"].update(size=100000),
         "studies.large_batch.hessian_subset.size: 100000 is more than the 1438 samples of the train split of "
         "digits; allowed: 1 to 1438"),
        (lambda c: c["studies"]["hessianflow"]["hessian_subset"].update(size=500),
         "studies.hessianflow.hessian_subset.size: 500 is more than the 359 samples of the test split"),
        (lambda c: c["studies"]["layerhessians"]["hessian_subset"].update(per_class=500),
         "studies.layerhessians.hessian_subset.per_class: 500 per class is more than the train split of mnist5k holds "
         "(4000 samples, 10 classes); allowed: 1 to about 400"),
    ],
    ids=["lr-nan", "momentum-inf", "batch-larger-than-data", "batch-larger-than-data-after-valid",
         "subset-larger-than-data", "subset-larger-than-test-split", "per-class-larger-than-data"],
)
def test_values_out_of_range_stop_before_any_job(tmp_path, default_config, mutate, message):
    mutate(default_config)
    result = snakemake(tmp_path, "-n", configfile=write_config(tmp_path / "bad.yaml", default_config))
    assert result.returncode != 0
    assert message in result.stderr + result.stdout, result.stderr[-2000:]
    assert not (tmp_path / "results").exists()


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("device: cpu\nstudies:\n  large_batch: {runs: [{model: tf_cnn}\n  hessianflow: {}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml, line 4, column \d+: not valid YAML"):
        load_yaml(bad)


def test_cuda_without_a_gpu_stops_before_any_job(tmp_path, default_config):
    """A dry run cannot know where jobs will run (a cluster profile sends them to GPU nodes), so the check runs
    when the workflow starts, before any job and any GPU slot lock."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    default_config["device"] = "cuda"
    default_config["gpu_lock_dir"] = str(tmp_path / "locks")
    result = snakemake(tmp_path, "--cores", "1", configfile=write_config(tmp_path / "cuda.yaml", default_config))
    assert result.returncode != 0
    assert "invalid config: device: cuda, but torch sees no CUDA device" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "locks").exists()
