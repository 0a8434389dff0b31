"""The real torchvision download path, against small synthetic files in the real formats served on 127.0.0.1.

Each dataset is generated in its on-disk format and served by an ``http.server`` in a thread (tests/torchvision_files.py),
and torchvision's md5 attributes are pointed at the synthetic files; then ``prepare_dataset`` downloads through
torchvision's own code and ``load_split`` reads it.
"""

from __future__ import annotations

import argparse
import json
import os
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

from hessian_spectra.commands import download as download_command
from hessian_spectra.data.download import (
    prepare_dataset,
    torchvision_root,
    verify_dataset,
)
from hessian_spectra.data.load import load_split
from torchvision_files import LocalServer, Synthetic, _idx_labels, make_synthetic, md5

TV_DATASETS = ("mnist", "fashionmnist", "cifar10", "cifar100", "svhn")


@pytest.fixture
def server():
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture
def served(server, monkeypatch):
    """``served(name)`` -> (synthetic, mirror): a synthetic dataset served locally, md5s patched."""

    def make(name: str, seed: int = 0):
        synthetic = make_synthetic(name, seed)
        synthetic.patch(monkeypatch)
        return synthetic, server.serve(synthetic)

    return make


def _as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 255.0)


@pytest.mark.parametrize("name", TV_DATASETS)
def test_download_then_load_matches_served_data(name, served, server, tmp_path):
    synthetic, mirror = served(name)
    root = tmp_path / "data"
    path = prepare_dataset(name, root, mirror=mirror)
    assert path == root / name == torchvision_root(name, root)
    assert sorted(os.listdir(root)) == [name]  # no temporary leftovers
    assert {f"/{name}/{f}" for f in synthetic.files} <= set(server.httpd.requests)
    verify_dataset(name, path)

    for split, (images, labels) in (("train", synthetic.train), ("test", synthetic.test)):
        x, y = load_split(name, split, root=path)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == images.shape and y.shape == labels.shape
        torch.testing.assert_close(x, _as_float(images), rtol=0, atol=0)
        assert torch.equal(y, torch.from_numpy(labels))
        assert 0.0 <= x.min() and x.max() <= 1.0
    if name == "svhn":
        y = load_split(name, "train", root=path)[1]
        assert set(y.tolist()) == set(range(10))  # label 10 read as 0: 10 classes, not 11


@pytest.mark.parametrize("name", ["mnist", "fashionmnist"])
def test_mnist_like_padded_to_32_and_resized(name, served, tmp_path):
    synthetic, mirror = served(name)
    prepare_dataset(name, tmp_path, mirror=mirror)
    x, _ = load_split(name, "test", root=tmp_path / name, image_size=32)
    original = _as_float(synthetic.test[0])
    assert x.shape == (len(original), 1, 32, 32)
    torch.testing.assert_close(x[:, :, 2:30, 2:30], original, rtol=0, atol=0)
    border = x.clone()
    border[:, :, 2:30, 2:30] = 0
    assert border.abs().max() == 0
    small, _ = load_split(name, "test", root=tmp_path / name, image_size=14)
    assert small.shape == (len(original), 1, 14, 14)
    assert 0 <= small.min() and small.max() <= 1


def test_cifar_normalizations_and_valid_split(served, tmp_path):
    synthetic, mirror = served("cifar10")
    prepare_dataset("cifar10", tmp_path, mirror=mirror)
    n_train = len(synthetic.train[1])
    x, _ = load_split("cifar10", "train", root=tmp_path / "cifar10", normalization="meanstd")
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std((0, 2, 3), correction=0), torch.ones(3), atol=1e-5, rtol=0)
    x, _ = load_split("cifar10", "train", root=tmp_path / "cifar10", normalization="center")
    torch.testing.assert_close(x.mean(0), torch.zeros(3, 32, 32), atol=1e-5, rtol=0)

    train_x, train_y = load_split("cifar10", "train", root=tmp_path / "cifar10", valid_size=5, split_seed=3)
    valid_x, valid_y = load_split("cifar10", "valid", root=tmp_path / "cifar10", valid_size=5, split_seed=3)
    assert len(train_y) == n_train - 5 and len(valid_y) == 5
    rows = {tuple(r) for r in torch.cat([train_x, valid_x]).flatten(1).mul(255).round().int().tolist()}
    assert rows == {tuple(r) for r in synthetic.train[0].reshape(n_train, -1).astype(int).tolist()}
    other = load_split("cifar10", "valid", root=tmp_path / "cifar10", valid_size=5, split_seed=4)[0]
    assert not torch.equal(other, valid_x)


def test_mirror_with_name_placeholder(server, monkeypatch, tmp_path):
    synthetic = make_synthetic("svhn")
    synthetic.patch(monkeypatch)
    server.serve(synthetic, prefix="mirror/svhn")
    prepare_dataset("svhn", tmp_path, mirror=f"{server.base}/mirror/{{name}}")
    verify_dataset("svhn", tmp_path / "svhn")


def test_mirror_must_be_a_url(tmp_path):
    with pytest.raises(ValueError, match="not a URL"):
        prepare_dataset("mnist", tmp_path, mirror="127.0.0.1/mnist")


def _break(server: LocalServer, mirror: str, synthetic: Synthetic, filename: str, mode: str) -> None:
    path = urlparse(mirror).path + filename
    data = synthetic.files[filename]
    if mode == "truncated":
        server.httpd.files[path] = data[: len(data) // 2]
    elif mode == "corrupt":
        middle = len(data) // 2
        server.httpd.files[path] = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
    elif mode == "dropped":
        server.httpd.drop.add(path)
    else:  # missing
        del server.httpd.files[path]


@pytest.mark.parametrize("mode", ["truncated", "corrupt", "dropped", "missing"])
@pytest.mark.parametrize(
    ("name", "filename"),
    [("mnist", "train-labels-idx1-ubyte.gz"), ("cifar10", "cifar-10-python.tar.gz"), ("svhn", "test_32x32.mat")],
)
def test_failed_download_names_dataset_and_file_and_leaves_nothing(name, filename, mode, served, server, tmp_path):
    synthetic, mirror = served(name)
    _break(server, mirror, synthetic, filename, mode)
    root = tmp_path / "data"
    with pytest.raises(RuntimeError) as excinfo:
        prepare_dataset(name, root, mirror=mirror)
    message = str(excinfo.value)
    assert f"dataset {name}" in message and filename in message
    assert not (root / name).exists()
    assert os.listdir(root) == []  # no temporary directory left behind


def test_prepare_is_idempotent_and_offline_once_complete(served, server, tmp_path):
    _, mirror = served("mnist")
    path = prepare_dataset("mnist", tmp_path, mirror=mirror)
    stamps = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    requests = len(server.httpd.requests)
    dead = "http://127.0.0.1:9/nothing/"  # nothing listens there: any download attempt would fail
    assert prepare_dataset("mnist", tmp_path, mirror=dead) == path
    assert len(server.httpd.requests) == requests
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == stamps


def test_incomplete_copy_is_replaced(served, tmp_path):
    _, mirror = served("cifar100")
    path = prepare_dataset("cifar100", tmp_path, mirror=mirror)
    (path / "cifar-100-python" / "train").write_bytes(b"garbage")
    (path / "stray.txt").write_text("left by someone")
    prepare_dataset("cifar100", tmp_path, mirror=mirror)
    verify_dataset("cifar100", tmp_path / "cifar100")
    assert not (path / "stray.txt").exists()
    assert os.listdir(tmp_path) == ["cifar100"]


def test_empty_target_directory_is_filled(served, tmp_path):
    # Snakemake creates an output's directory before the job runs
    _, mirror = served("fashionmnist")
    (tmp_path / "fashionmnist").mkdir()
    prepare_dataset("fashionmnist", tmp_path, mirror=mirror)
    verify_dataset("fashionmnist", tmp_path / "fashionmnist")
    assert os.listdir(tmp_path) == ["fashionmnist"]


def test_failed_redownload_keeps_the_old_copy(served, server, tmp_path):
    synthetic, mirror = served("svhn")
    path = prepare_dataset("svhn", tmp_path, mirror=mirror)
    (path / "train_32x32.mat").unlink()
    _break(server, mirror, synthetic, "train_32x32.mat", "corrupt")
    with pytest.raises(RuntimeError, match="train_32x32.mat"):
        prepare_dataset("svhn", tmp_path, mirror=mirror)
    assert (path / "test_32x32.mat").is_file()
    assert os.listdir(tmp_path) == ["svhn"]


def test_verify_pre_downloaded_root(served, server, tmp_path):
    synthetic, mirror = served("mnist")
    prepare_dataset("mnist", tmp_path, mirror=mirror)
    server.close()  # a data_root is read without any network
    verify_dataset("mnist", tmp_path / "mnist")
    x, y = load_split("mnist", "train", root=tmp_path / "mnist")
    assert torch.equal(y, torch.from_numpy(synthetic.train[1]))

    raw = tmp_path / "mnist" / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        verify_dataset("mnist", tmp_path / "mnist")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_split("mnist", "test", root=tmp_path / "mnist")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        verify_dataset("fashionmnist", tmp_path / "fashionmnist")


def test_verify_detects_corrupt_file(served, tmp_path):
    _, mirror = served("cifar10")
    path = prepare_dataset("cifar10", tmp_path, mirror=mirror)
    with open(path / "cifar-10-batches-py" / "data_batch_3", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(RuntimeError, match="data_batch_3"):
        verify_dataset("cifar10", tmp_path / "cifar10")


def _cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    download_command.add_arguments(parser)
    download_command.run(parser.parse_args(argv))


@pytest.mark.parametrize("name", ["fashionmnist", "cifar10"])
def test_cli_download_writes_ready_json(name, served, tmp_path):
    synthetic, mirror = served(name)
    _cli(["--dataset", name, "--root", str(tmp_path), "--mirror", mirror])
    ready = tmp_path / name / "READY.json"
    manifest = json.loads(ready.read_text())
    assert manifest["dataset"] == name
    listed = {f["path"]: f for f in manifest["files"]}
    for filename, data in synthetic.files.items():
        entry = next(f for p, f in listed.items() if p.endswith(filename))
        assert entry["md5"] == md5(data) and entry["size"] == len(data)
    for rel, entry in listed.items():
        assert (tmp_path / name / rel).stat().st_size == entry["size"]
    assert "READY.json" not in listed

    # --check-only on the pre-downloaded root: verified again, READY.json rewritten
    ready.unlink()
    _cli(["--dataset", name, "--root", str(tmp_path / name), "--check-only"])
    assert json.loads(ready.read_text())["files"] == manifest["files"]


def test_cli_failures_write_nothing(served, server, tmp_path):
    synthetic, mirror = served("mnist")
    _break(server, mirror, synthetic, "t10k-images-idx3-ubyte.gz", "corrupt")
    with pytest.raises(RuntimeError, match="t10k-images-idx3-ubyte.gz"):
        _cli(["--dataset", "mnist", "--root", str(tmp_path), "--mirror", mirror])
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        _cli(["--dataset", "mnist", "--root", str(tmp_path / "mnist"), "--check-only"])
    assert not (tmp_path / "mnist" / "READY.json").exists()


def test_cli_main_exit_codes(served, server, tmp_path):
    from hessian_spectra import cli

    synthetic, mirror = served("svhn")
    assert cli.main(["download", "--dataset", "svhn", "--root", str(tmp_path / "ok"), "--mirror", mirror]) == 0
    assert (tmp_path / "ok" / "svhn" / "READY.json").is_file()
    _break(server, mirror, synthetic, "train_32x32.mat", "truncated")
    assert cli.main(["download", "--dataset", "svhn", "--root", str(tmp_path / "bad"), "--mirror", mirror]) == 2
    assert not (tmp_path / "bad" / "svhn").exists()
    # a stale READY.json is removed when the copy no longer verifies
    (tmp_path / "ok" / "svhn" / "test_32x32.mat").unlink()
    assert cli.main(["download", "--dataset", "svhn", "--root", str(tmp_path / "ok" / "svhn"), "--check-only"]) == 2
    assert not (tmp_path / "ok" / "svhn" / "READY.json").exists()


def test_cli_digits_needs_no_download(tmp_path):
    _cli(["--dataset", "digits", "--root", str(tmp_path)])
    manifest = json.loads((tmp_path / "digits" / "READY.json").read_text())
    assert manifest["files"] == [] and manifest["source"] == "sklearn"


def test_the_workflow_hands_a_mirror_with_name_placeholder_to_the_download(tmp_path):
    """`data_mirror: .../{name}/` is the library's placeholder, not a Snakemake wildcard (it stopped the DAG)."""
    from conftest import REPO, snakemake

    mirror = "http://127.0.0.1:9/{name}/"
    done = snakemake(tmp_path, "-n", "-p", "--cores", "1", "--config", f"data_mirror={mirror}", configfile=REPO / "configs" / "paper.yaml")
    assert done.returncode == 0, done.stderr[-2000:]
    downloads = [line for line in done.stdout.splitlines() if line.startswith("Shell command: hessian-spectra download")]
    assert len(downloads) == 4 and all(f"--mirror '{mirror}'" in line for line in downloads)


def _hinted_command(message: str) -> str:
    """The Python code of the `python -c "..."` command an error message suggests."""
    return message.split('`python -c "', 1)[1].split('"`', 1)[0]


def test_an_empty_data_root_names_the_command_that_fills_it(served, monkeypatch, tmp_path):
    """A shared torchvision root (`data_root`) is filled by torchvision, not by `download --root`, which writes
    ROOT/NAME: the message says so, and its command, run as written, fills that very folder."""
    _, mirror = served("mnist")
    monkeypatch.setattr(tvd.MNIST, "mirrors", [mirror])
    data_root = tmp_path / "shared"
    data_root.mkdir()
    with pytest.raises(FileNotFoundError) as caught:
        _cli(["--dataset", "mnist", "--root", str(data_root), "--check-only"])
    message = str(caught.value)
    assert f"missing file(s) in {data_root}: " in message and "`data_root: null`" in message
    assert "\n" not in message and "hessian-spectra download" not in message
    exec(_hinted_command(message), {})
    _cli(["--dataset", "mnist", "--root", str(data_root), "--check-only"])
    assert (data_root / "READY.json").is_file()


def test_a_folder_named_after_its_dataset_is_filled_by_the_download_command(served, tmp_path):
    _, mirror = served("fashionmnist")
    with pytest.raises(FileNotFoundError) as caught:
        verify_dataset("fashionmnist", tmp_path / "fashionmnist")
    assert f"`hessian-spectra download --dataset fashionmnist --root {tmp_path}`" in str(caught.value)
    _cli(["--dataset", "fashionmnist", "--root", str(tmp_path), "--mirror", mirror])
    verify_dataset("fashionmnist", tmp_path / "fashionmnist")


def test_a_download_with_labels_outside_its_classes_is_never_marked_ready(server, monkeypatch, tmp_path):
    synthetic = make_synthetic("mnist")
    labels = synthetic.test[1].copy()
    labels[3] = 12
    synthetic.files["t10k-labels-idx1-ubyte.gz"] = _idx_labels(labels)
    synthetic.md5_attributes["resources"] = [(name, md5(data)) for name, data in synthetic.files.items()]
    synthetic.patch(monkeypatch)
    mirror = server.serve(synthetic)
    with pytest.raises(ValueError) as caught:
        _cli(["--dataset", "mnist", "--root", str(tmp_path), "--mirror", mirror])
    assert str(caught.value) == f"{tmp_path / 'mnist'}: test_labels has labels outside 0..9: 12"
    assert not (tmp_path / "mnist" / "READY.json").exists()
