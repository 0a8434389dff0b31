"""A user's own model (a module:function factory) and data (an ImageFolder tree, a .pt or .npz file of tensors):
loaded as the built-in ones, rebuilt from checkpoints, and every bad case stopped at parse time naming the key."""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import REPO, make_subset, snakemake, write_config
from hessian_spectra import layout
from hessian_spectra.checkpoint import load_checkpoint, model_from_checkpoint
from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.data.load import _load_digits, load_split
from hessian_spectra.layout import RunFiles
from hessian_spectra.runs import block_count, load_yaml, plan_runs, run_json
from hessian_spectra.train.loop import train_run

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
NETS = textwrap.dedent(
    """
    from torch import nn

    def mlp(in_channels, image_size, num_classes, hidden=16):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, hidden), nn.ReLU(),
                             nn.Linear(hidden, num_classes))

    def fixed_ten(in_channels, image_size, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, 10))

    def not_a_module(in_channels, image_size, num_classes):
        return 3
    """
)


def _digits_arrays() -> dict[str, np.ndarray]:
    x_train, y_train = _load_digits(True)
    x_test, y_test = _load_digits(False)
    return {"train_images": (x_train[:, 0].numpy() * 255).round().astype(np.uint8), "train_labels": y_train.numpy(),
            "test_images": (x_test[:, 0].numpy() * 255).round().astype(np.uint8), "test_labels": y_test.numpy()}


def _export_folder(out) -> None:
    command = [sys.executable, "-m", "hessian_spectra", "export-images", "--dataset", "digits", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True)


def _plan(model: str, dataset: str, **entry) -> dict:
    study = {"defaults": {"model": model, "dataset": dataset, "image_size": 8, "epochs": 1, "lr": 0.05,
                          "batch_size": 64, **entry}, "runs": [{}], "hessian_subset": {"per_class": 3}}
    (run,) = plan_runs({"studies": {"layerhessians": study}}, SCHEMA).values()
    return run


def test_a_folder_and_tensor_files_load_what_was_stored(tmp_path):
    """The three forms hold the same digits: same counts, shapes and classes; the pixels as stored (uint8 / 255)."""
    arrays = _digits_arrays()
    np.savez(tmp_path / "digits.npz", **arrays)
    torch.save({key: torch.from_numpy(value) for key, value in arrays.items()}, tmp_path / "digits.pt")
    _export_folder(tmp_path / "images" / "digits")
    for path in ("digits.npz", "digits.pt", "images/digits"):
        dataset = str(tmp_path / path)
        info = dataset_info(dataset)
        assert (info.num_classes, info.in_channels, info.native_size, info.train_size, info.test_size) == (
            10, 1, 8, 1438, 359), path
        x, y = load_split(dataset, "test")
        # the folder holds each class's images in a folder of their own, in their stored order
        order = np.argsort(arrays["test_labels"], kind="stable") if path.startswith("images") else slice(None)
        assert torch.equal(x, torch.from_numpy(arrays["test_images"][order][:, None] / 255.0).float()), path
        assert torch.equal(y, torch.from_numpy(arrays["test_labels"][order]).long()), path


def test_a_factory_model_is_trained_and_rebuilt_from_its_checkpoint(tmp_path, monkeypatch):
    """The checkpoint records the factory and its options: any later job rebuilds the same network."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user_nets.py").write_text(NETS)
    np.savez(tmp_path / "digits.npz", **_digits_arrays())
    run = _plan("user_nets:mlp", "digits.npz", model_options={"hidden": 12})
    assert run["key"] == "layerhessians/runs/mlp/digits-npz/bs64/seed0/sgd-lr0.05-m0.9-wd0-e1-hidden12-img8"
    assert run["layer_blocks"] == ["1.weight", "3.weight"]
    train_run(run, tmp_path / "run")
    ckpt = load_checkpoint(RunFiles(str(tmp_path / "run")).checkpoint(1))
    assert ckpt["model"] == {"name": "user_nets:mlp", "in_channels": 1, "image_size": 8, "num_classes": 10,
                             "options": {"hidden": 12}}
    model = model_from_checkpoint(ckpt)
    assert [p.shape for p in model.parameters()] == [(12, 64), (12,), (10, 12), (10,)]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ckpt["state_dict"].items())
    history = (tmp_path / "run" / "history.tsv").read_text().splitlines()
    assert float(history[-1].split("\t")[history[0].split("\t").index("test_acc")]) > 0.5


def test_listed_layer_blocks_are_the_blocks_a_later_job_computes(tmp_path, monkeypatch):
    """A separate process (as a Snakemake job) rebuilds the factory's model from the checkpoint and computes the
    spectra of the blocks the run lists, and of those only."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user_nets.py").write_text(NETS)
    run = _plan("user_nets:mlp", "digits", layer_blocks=["3.weight"])
    assert run["layer_blocks"] == ["3.weight"] and block_count(run) == 1
    assert "layer_blocks" not in json.loads(run_json(run)), "an analysis setting, not part of the run's identity"
    train_run(run, tmp_path / "run")
    make_subset(run, tmp_path / "subset.pt")
    command = [sys.executable, "-m", "hessian_spectra", "spectrum", "--checkpoint",
               RunFiles(str(tmp_path / "run")).checkpoint(1), "--data", "subset.pt", "--out", "spectra.tsv", "--layers",
               "--blocks", ",".join(run["layer_blocks"]), "--top-k", "1", "--tol", "1e-2"]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    rows = (tmp_path / "spectra.tsv").read_text().splitlines()
    assert {line.split("\t")[1] for line in rows[1:]} == {"full", "3.weight"}


def _workdir(tmp_path, default_config, mutate) -> dict:
    (tmp_path / "user_nets.py").write_text(NETS)
    study = default_config["studies"]["layerhessians"]
    study["defaults"].update(dataset="digits", image_size=8)
    study["runs"] = [{"model": "user_nets:mlp", "batch_size": 32, "lr": 0.03}]
    mutate(tmp_path, default_config)
    return default_config


def _folder_without_test(workdir, config):
    _export_folder(workdir / "mine")
    shutil.rmtree(workdir / "mine" / "test")
    config["studies"]["layerhessians"]["defaults"]["dataset"] = "mine/"


def _npz_without_labels(workdir, config):
    arrays = _digits_arrays()
    del arrays["test_labels"]
    np.savez(workdir / "mine.npz", **arrays)
    config["studies"]["layerhessians"]["defaults"]["dataset"] = "mine.npz"


def _three_classes(workdir, config):
    arrays = _digits_arrays()
    keep = {split: arrays[f"{split}_labels"] < 3 for split in ("train", "test")}
    np.savez(workdir / "abc.npz", **{key: value[keep[key.split("_")[0]]] for key, value in arrays.items()})
    config["studies"]["layerhessians"]["defaults"]["dataset"] = "abc.npz"


def _small_data(workdir, config):
    arrays = _digits_arrays()
    np.savez(workdir / "few.npz", **{key: value[:40] for key, value in arrays.items()})
    config["studies"]["layerhessians"]["defaults"]["dataset"] = "few.npz"


def _stray_label(label: int, split: str):
    def mutate(workdir, config):
        arrays = _digits_arrays()
        arrays[f"{split}_labels"][5] = label
        np.savez(workdir / "stray.npz", **arrays)
        config["studies"]["layerhessians"]["defaults"]["dataset"] = "stray.npz"

    return mutate


def _nan_pixel(workdir, config):
    arrays = _digits_arrays()
    arrays["train_images"] = arrays["train_images"].astype(np.float32) / 255
    arrays["train_images"][9, 0, 0] = np.nan
    np.savez(workdir / "nan.npz", **arrays)
    config["studies"]["layerhessians"]["defaults"]["dataset"] = "nan.npz"


def _set_run(**values):
    return lambda workdir, config: config["studies"]["layerhessians"]["runs"][0].update(values)


def _then(first, second):
    return lambda workdir, config: (first(workdir, config), second(workdir, config))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_set_run(model="no_such_module_here:make"),
         "studies.layerhessians.runs[0].model: module 'no_such_module_here' does not import (ModuleNotFoundError"),
        (_set_run(model="user_nets:missing"),
         "studies.layerhessians.runs[0].model: module 'user_nets' ("),
        (_set_run(model="user_nets:not_a_module"),
         "studies.layerhessians.runs[0].model: user_nets:not_a_module with in_channels=1, image_size=8, "
         "num_classes=10, model_options={} failed: ValueError: user_nets:not_a_module returned int, not a "
         "torch.nn.Module"),
        (_set_run(model_options={"width": 2}),
         "studies.layerhessians.runs[0].model: user_nets:mlp with in_channels=1"),
        (_set_run(layer_blocks=["1.weight", "fc.weight"]),
         "studies.layerhessians.runs[0].layer_blocks[1]: 'fc.weight' is not a parameter of user_nets:mlp; its "
         "Conv/Linear weights: 1.weight, 3.weight"),
        (_set_run(model="user nets"), "studies.layerhessians.runs[0].model: 'user nets' is not one of"),
        (_folder_without_test,
         "studies.layerhessians.runs[0].dataset: mine: an ImageFolder dataset needs test/ with one subfolder per class"),
        (_npz_without_labels,
         "studies.layerhessians.runs[0].dataset: mine.npz: missing array(s) test_labels"),
        (_then(_three_classes, _set_run(model="user_nets:fixed_ten")),
         "studies.layerhessians.runs[0].model: user_nets:fixed_ten maps 2 images of 1x8x8 (abc.npz) to outputs of "
         "shape [2, 10]; expected [2, 3]"),
        (_then(_small_data, _set_run(batch_size=64)),
         "studies.layerhessians.runs[0].batch_size: 64 is larger than the 40 training samples of few.npz"),
        (_then(_small_data, _set_run(batch_size=8)),
         "studies.layerhessians.hessian_subset.per_class: 5 per class is more than the train split of few.npz"),
        (_stray_label(10, "train"),
         "studies.layerhessians.runs[0].dataset: stray.npz: test has no image of class(es) 10 of 0..10"),
        (_stray_label(42, "test"), "studies.layerhessians.runs[0].dataset: stray.npz: test_labels has labels outside "
                                   "0..9: 42"),
        (_nan_pixel, "studies.layerhessians.runs[0].dataset: nan.npz: train_images has non-finite pixels (NaN or inf) "
                     "in image(s) 9"),
    ],
    ids=["module-does-not-import", "missing-function", "not-a-module", "factory-fails-on-options",
         "unknown-layer-block", "neither-name-nor-factory", "folder-without-test", "npz-without-labels",
         "classes-differ-from-outputs", "batch-larger-than-data", "subset-larger-than-data", "label-10",
         "label-42", "nan-pixel"],
)
def test_a_bad_model_or_dataset_stops_before_any_job(tmp_path, default_config, mutate, message):
    config = _workdir(tmp_path, default_config, mutate)
    result = snakemake(tmp_path, "-n", configfile=write_config(tmp_path / "bad.yaml", config))
    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert message in output, output[-3000:]
    assert "invalid config" in output
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_the_example_runs_end_to_end_on_the_users_model(tmp_path):
    """examples/own_model: the factory's CNN on the exported ImageFolder through both studies, every figure made
    from that model (its three layer blocks, its checkpoints), and TensorBoard events beside the run and tables."""
    (tmp_path / "examples").symlink_to(REPO / "examples")  # as from the repository root
    config = REPO / "examples" / "own_model" / "config.yaml"
    result = snakemake(tmp_path, "--cores", "2", configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    again = snakemake(tmp_path, "-n", configfile=config)
    assert "Nothing to be done" in again.stdout + again.stderr, "the exported folder and the events rerun nothing"
    results = tmp_path / "results"
    blocks = ["0.weight", "2.weight", "5.weight"]
    name = "small_cnn_resources-images-digits"
    figures = [f"layerhessians/training_eigvals_epochwise_{name}_{layer}.png" for layer in (1, 2, 3)]
    figures += ["layerhessians/match_distros_peak.png", "sharpest_directions/spectrum_trajectory.png",
                "sharpest_directions/lr_grid.png"]
    for figure in figures:
        assert (tmp_path / layout.figure(*figure.split("/"), "own_model")).stat().st_size > 0, figure
    run_dirs = sorted(path.parent for path in results.glob("*/runs/small_cnn/resources-images-digits/*/*/*/run.json"))
    assert len(run_dirs) == 3
    for run_dir in run_dirs:
        assert json.loads((run_dir / "run.json").read_text())["model"] == "examples.own_model.net:small_cnn"
        ckpt = load_checkpoint(RunFiles(str(run_dir)).checkpoint(2))
        assert ckpt["model"]["name"] == "examples.own_model.net:small_cnn" and ckpt["model"]["options"] == {"channels": 4}
        assert [n for n, _ in model_from_checkpoint(ckpt).named_parameters() if n.endswith("weight")] == blocks
        assert (run_dir / "tensorboard").is_dir()
    matching = (tmp_path / layout.study_table("layerhessians", "matching.tsv", "own_model")).read_text().splitlines()
    header = matching[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in matching[1:]]
    assert sorted({row["block"] for row in rows}) == blocks
    assert {row["model"] for row in rows} == {"examples.own_model.net:small_cnn"}
    trajectories = list(results.glob("tables/sharpest_directions/runs/*/*/*/*/*/tensorboard/trajectory"))
    assert len(trajectories) == 2
    assert len(list((tmp_path / "resources" / "images" / "digits" / "train").iterdir())) == 10
