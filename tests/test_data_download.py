"""The real torchvision download path, against small synthetic files in the real formats served on 127.0.0.1.

Each dataset is generated in its on-disk format (gzipped idx files, CIFAR python-pickle tarballs, SVHN
``.mat``), served by an ``http.server`` in a thread, and torchvision's md5 attributes are pointed at the
synthetic files; then ``prepare_dataset`` downloads through torchvision's own code and ``load_split`` reads it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import scipy.io
import torch
from torchvision import datasets as tvd

from hessian_spectra.commands import download as download_command
from hessian_spectra.data.download import prepare_dataset, torchvision_root, verify_dataset
from hessian_spectra.data.load import load_split

TV_DATASETS = ("mnist", "fashionmnist", "cifar10", "cifar100", "svhn")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Synthetic:
    """One generated dataset: served files, the arrays they hold, and how to point torchvision's md5s at them."""

    name: str
    files: dict[str, bytes]  # file name -> content, in download order
    train: tuple[np.ndarray, np.ndarray]  # uint8 images (N, C, H, W), int64 labels
    test: tuple[np.ndarray, np.ndarray]
    patch: object = field(repr=False)  # callable(monkeypatch)


def _idx_images(images: np.ndarray) -> bytes:
    return gzip.compress(struct.pack(">IIII", 0x803, *images.shape) + images.astype(np.uint8).tobytes(), mtime=0)


def _idx_labels(labels: np.ndarray) -> bytes:
    return gzip.compress(struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes(), mtime=0)


def _labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def make_mnist(name: str, rng: np.random.Generator, n_train: int = 24, n_test: int = 12) -> Synthetic:
    cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
    train = (rng.integers(0, 256, (n_train, 1, 28, 28), dtype=np.uint8), _labels(rng, n_train, 10))
    test = (rng.integers(0, 256, (n_test, 1, 28, 28), dtype=np.uint8), _labels(rng, n_test, 10))
    files = {
        "train-images-idx3-ubyte.gz": _idx_images(train[0][:, 0]),
        "train-labels-idx1-ubyte.gz": _idx_labels(train[1]),
        "t10k-images-idx3-ubyte.gz": _idx_images(test[0][:, 0]),
        "t10k-labels-idx1-ubyte.gz": _idx_labels(test[1]),
    }
    assert [f for f, _ in cls.resources] == list(files)

    def patch(monkeypatch):
        monkeypatch.setattr(cls, "resources", [(f, md5(data)) for f, data in files.items()])

    return Synthetic(name, files, train, test, patch)


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_cifar(name: str, rng: np.random.Generator) -> Synthetic:
    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    num_classes = 10 if name == "cifar10" else 100
    label_key = "labels" if name == "cifar10" else "fine_labels"
    batch_sizes = [4] * len(cls.train_list)
    batch_sizes = [100] if name == "cifar100" else batch_sizes
    train_labels = _labels(rng, sum(batch_sizes), num_classes).tolist()  # every class in train and in test
    members, batches = {}, []
    for (filename, _), n in zip(cls.train_list, batch_sizes):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels, train_labels = train_labels[:n], train_labels[n:]
        entry = {"batch_label": filename, "data": data, label_key: labels}
        if name == "cifar100":
            entry["coarse_labels"] = [label // 5 for label in labels]
        members[filename] = pickle.dumps(entry, protocol=2)
        batches.append((data, labels))
    test_data = rng.integers(0, 256, (num_classes, 3072), dtype=np.uint8)
    test_labels = _labels(rng, num_classes, num_classes).tolist()
    test_entry = {"batch_label": "test", "data": test_data, label_key: test_labels}
    if name == "cifar100":
        test_entry["coarse_labels"] = [label // 5 for label in test_labels]
    members[cls.test_list[0][0]] = pickle.dumps(test_entry, protocol=2)
    members[cls.meta["filename"]] = pickle.dumps(
        {cls.meta["key"]: [f"class{i}" for i in range(num_classes)]}, protocol=2
    )
    archive = _tarball({f"{cls.base_folder}/{member}": data for member, data in members.items()})
    train = (
        np.concatenate([d for d, _ in batches]).reshape(-1, 3, 32, 32),
        np.array(sum((labels for _, labels in batches), []), dtype=np.int64),
    )
    test = (test_data.reshape(-1, 3, 32, 32), np.array(test_labels, dtype=np.int64))

    def patch(monkeypatch):
        monkeypatch.setattr(cls, "tgz_md5", md5(archive))
        monkeypatch.setattr(cls, "train_list", [[f, md5(members[f])] for f, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[f, md5(members[f])] for f, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(members[cls.meta["filename"]])})

    return Synthetic(name, {cls.filename: archive}, train, test, patch)


def make_svhn(rng: np.random.Generator) -> Synthetic:
    cls = tvd.SVHN
    files, arrays = {}, {}
    for split, n in (("train", 20), ("test", 10)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # SVHN's own layout (H, W, C, N)
        raw = (np.arange(n) % 10 + 1).astype(np.uint8)  # labels 1..10, 10 is the digit 0
        buffer = io.BytesIO()
        scipy.io.savemat(buffer, {"X": x, "y": raw.reshape(-1, 1)})
        files[cls.split_list[split][1]] = buffer.getvalue()
        arrays[split] = (x.transpose(3, 2, 0, 1), np.where(raw == 10, 0, raw).astype(np.int64))

    def patch(monkeypatch):
        split_list = dict(cls.split_list)
        for split in ("train", "test"):
            url, filename, _ = split_list[split]
            split_list[split] = [url, filename, md5(files[filename])]
        monkeypatch.setattr(cls, "split_list", split_list)

    return Synthetic("svhn", files, arrays["train"], arrays["test"], patch)


def make_synthetic(name: str, seed: int = 0) -> Synthetic:
    rng = np.random.default_rng(seed)
    if name in ("mnist", "fashionmnist"):
        return make_mnist(name, rng)
    if name in ("cifar10", "cifar100"):
        return make_cifar(name, rng)
    return make_svhn(rng)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        path = urlparse(self.path).path
        server.requests.append(path)
        if path not in server.files:
            self.send_error(404)
            return
        body = server.files[path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path in server.drop:  # announce the full length, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class LocalServer:
    """An HTTP server on 127.0.0.1 serving in-memory files, in a daemon thread."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.files, self.httpd.drop, self.httpd.requests = {}, set(), []
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def serve(self, synthetic: Synthetic, prefix: str | None = None) -> str:
        """Serve a dataset's files under /<prefix>/ and return the mirror URL for them."""
        prefix = prefix or synthetic.name
        for filename, data in synthetic.files.items():
            self.httpd.files[f"/{prefix}/{filename}"] = data
        return f"{self.base}/{prefix}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


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
    synthetic.patch(monkeypatch)
    mirror = server.serve(synthetic)
    with pytest.raises(ValueError) as caught:
        _cli(["--dataset", "mnist", "--root", str(tmp_path), "--mirror", mirror])
    assert str(caught.value) == f"{tmp_path / 'mnist'}: test_labels has labels outside 0..9: 12"
    assert not (tmp_path / "mnist" / "READY.json").exists()
