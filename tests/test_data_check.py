"""Data is checked before anything trains on it: non-finite pixels, stray labels, classes missing from a split and
train/test shapes each stop with one line naming the file; a file that passed is not read again to be checked."""

import json

import numpy as np
import pytest

from hessian_spectra import cli
from hessian_spectra.data import files
from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.data.check import check_splits
from hessian_spectra.data.load import _load_digits


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test's own cache of checked files, and no inspection remembered from another test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    files.inspect_data.cache_clear()
    yield
    files.inspect_data.cache_clear()


def digits_arrays() -> dict[str, np.ndarray]:
    """The digits as a user's tensor file holds them: uint8 images (N, 8, 8) and int64 labels."""
    arrays = {}
    for split, train in (("train", True), ("test", False)):
        x, y = _load_digits(train)
        arrays[f"{split}_images"] = (x[:, 0].numpy() * 255).round().astype(np.uint8)
        arrays[f"{split}_labels"] = y.numpy()
    return arrays


def label_10_in_train(arrays):
    arrays["train_labels"][5] = 10


def label_10_in_test(arrays):
    arrays["test_labels"][5] = 10


def label_42_in_train(arrays):
    arrays["train_labels"][7] = 42


def negative_label(arrays):
    arrays["test_labels"][3] = -1


def nan_pixel(arrays):
    arrays["train_images"] = arrays["train_images"].astype(np.float32) / 255
    arrays["train_images"][11, 2, 3] = np.nan


def class_missing_from_train(arrays):
    keep = arrays["train_labels"] != 4
    arrays["train_images"], arrays["train_labels"] = arrays["train_images"][keep], arrays["train_labels"][keep]


def larger_test_images(arrays):
    arrays["test_images"] = np.pad(arrays["test_images"], ((0, 0), (1, 1), (1, 1)))


BAD = {
    label_10_in_train: "test has no image of class(es) 10 of 0..10",
    label_10_in_test: "test_labels has labels outside 0..9: 10",
    label_42_in_train: "train has no image of class(es) 10, 11, 12, 13, 14, 15, 16, 17, ... (32 in all) of 0..42",
    negative_label: "test_labels has labels outside 0..9: -1",
    nan_pixel: "train_images has non-finite pixels (NaN or inf) in image(s) 11",
    class_missing_from_train: "train has no image of class(es) 4 of 0..9",
    larger_test_images: "train and test images differ in shape ((1, 8, 8) and (1, 10, 10))",
}


def bad_file(tmp_path, mutate, suffix=".npz"):
    arrays = digits_arrays()
    mutate(arrays)
    path = tmp_path / f"{mutate.__name__}{suffix}"
    if suffix == ".npz":
        np.savez(path, **arrays)
    else:
        import torch

        torch.save({key: torch.from_numpy(value) for key, value in arrays.items()}, path)
    return path


@pytest.mark.parametrize("mutate", BAD, ids=lambda f: f.__name__)
def test_a_bad_tensor_file_stops_with_one_line_naming_it(tmp_path, mutate):
    path = bad_file(tmp_path, mutate)
    with pytest.raises(ValueError) as caught:
        dataset_info(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and BAD[mutate] in message and "\n" not in message


def test_a_pt_file_is_checked_as_an_npz_is(tmp_path):
    path = bad_file(tmp_path, label_42_in_train, ".pt")
    with pytest.raises(ValueError, match="train has no image of class"):
        dataset_info(str(path))


def test_the_known_datasets_classes_bound_the_labels():
    images = {split: np.zeros((3, 1, 2, 2), np.uint8) for split in ("train", "test")}
    labels = {"train": np.array([0, 1, 2]), "test": np.array([0, 1, 2])}
    assert check_splits("here", images, labels) == 3
    with pytest.raises(ValueError, match=r"^here: train has no image of class\(es\) 3 of 0..3"):
        check_splits("here", images, labels, num_classes=4)
    with pytest.raises(ValueError, match=r"^here: train_labels has labels outside 0..1: 2"):
        check_splits("here", images, labels, num_classes=2)


def test_training_stops_on_bad_data_before_it_trains(tmp_path, monkeypatch, caplog):
    """A run planned on a good file whose file went bad since: the training job names the file, writes nothing."""
    from conftest import REPO
    from hessian_spectra.runs import load_yaml, plan_runs, run_json

    monkeypatch.chdir(tmp_path)
    good = digits_arrays()
    np.savez("mine.npz", **good)
    study = {"defaults": {"model": "mlp", "dataset": "mine.npz", "image_size": 8, "epochs": 1, "batch_size": 64,
                          "lr": 0.05}, "runs": [{}], "hessian_subset": {"size": 32}}
    schema = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
    (run,) = plan_runs({"studies": {"init_chain_rule": study}}, schema).values()
    nan_pixel(good)
    np.savez("mine.npz", **good)
    files.inspect_data.cache_clear()
    with caplog.at_level("ERROR"):
        code = cli.main(["train", "--run", run_json(run), "--out-dir", "run", "--threads", "1"])
    assert code == 2
    (error,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert error == ("ValueError: mine.npz: train_images has non-finite pixels (NaN or inf) in image(s) 11")
    assert not (tmp_path / "run").exists()


def test_a_checked_file_is_not_read_again_until_its_bytes_change(tmp_path, monkeypatch):
    path = tmp_path / "digits.npz"
    np.savez(path, **digits_arrays())
    info = dataset_info(str(path))
    (cached,) = (tmp_path / "cache" / "hessian-spectra").rglob("*.json")
    assert json.loads(cached.read_text())["num_classes"] == 10

    def unread(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(files, "_read_tensors", unread)
    files.inspect_data.cache_clear()
    assert dataset_info(str(path)) == info
    arrays = digits_arrays()
    label_42_in_train(arrays)
    np.savez(path, **arrays)
    files.inspect_data.cache_clear()
    with pytest.raises(AssertionError, match="was read again"):
        dataset_info(str(path))


def test_a_folder_with_an_empty_class_folder_is_named(tmp_path):
    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / "images" / split / label).mkdir(parents=True)
    from PIL import Image

    for split in ("train", "test"):
        Image.new("L", (8, 8)).save(tmp_path / "images" / split / "a" / "0.png")
    Image.new("L", (8, 8)).save(tmp_path / "images" / "train" / "b" / "0.png")
    with pytest.raises(ValueError) as caught:
        dataset_info(str(tmp_path / "images"))
    assert str(caught.value) == (f"{tmp_path / 'images'}/test: no images in class folder(s) b; every class needs "
                                 "images in train/ and in test/")
