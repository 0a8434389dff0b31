"""Small datasets in torchvision's real on-disk formats, served on 127.0.0.1, and torchvision's md5s pointed at them.

Each dataset is generated in its download format (gzipped idx files, CIFAR python-pickle tarballs, SVHN ``.mat``)
with seeded random pixels and balanced labels. ``Synthetic.md5_attributes`` are the torchvision class attributes
holding the md5s of the real files, set to those of the generated ones: in this process with ``patch`` (pytest's
monkeypatch), in subprocesses (Snakemake's jobs) with ``md5_site``, a ``sitecustomize`` that sets them when
``torchvision.datasets`` is imported. Everything else (download, md5 checks, extraction, reading) is torchvision's.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import struct
import tarfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import scipy.io
from torchvision import datasets as tvd

TV_CLASSES = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100",
              "svhn": "SVHN"}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Synthetic:
    """One generated dataset: served files, the arrays they hold, and torchvision's md5 attributes for them."""

    name: str
    files: dict[str, bytes]  # file name -> content, in download order
    train: tuple[np.ndarray, np.ndarray]  # uint8 images (N, C, H, W), int64 labels
    test: tuple[np.ndarray, np.ndarray]
    md5_attributes: dict[str, Any]  # attribute of the torchvision class -> its value for these files

    @property
    def tv_class(self) -> type:
        return getattr(tvd, TV_CLASSES[self.name])

    def patch(self, monkeypatch) -> None:
        """Point torchvision's md5s at these files in this process."""
        for attribute, value in self.md5_attributes.items():
            monkeypatch.setattr(self.tv_class, attribute, value)


def _idx_images(images: np.ndarray) -> bytes:
    return gzip.compress(struct.pack(">IIII", 0x803, *images.shape) + images.astype(np.uint8).tobytes(), mtime=0)


def _idx_labels(labels: np.ndarray) -> bytes:
    return gzip.compress(struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes(), mtime=0)


def _labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def _some_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    """``n`` labels, every class among them where ``n`` allows."""
    return _labels(rng, n, num_classes) if n >= num_classes else rng.integers(0, num_classes, n)


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
    return Synthetic(name, files, train, test, {"resources": [(f, md5(data)) for f, data in files.items()]})


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_cifar(name: str, rng: np.random.Generator, n_train: int | None = None, n_test: int | None = None) -> Synthetic:
    """CIFAR-10 (``n_train`` over its five batches, default 4 each) or CIFAR-100 (one batch, default 100); ``n_test``
    default one image per class. Every class is in train and in test where there are enough images."""
    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    num_classes = 10 if name == "cifar10" else 100
    label_key = "labels" if name == "cifar10" else "fine_labels"
    n_train = n_train or (100 if name == "cifar100" else 4 * len(cls.train_list))
    n_test = n_test or num_classes
    batch_sizes = [len(part) for part in np.array_split(np.arange(n_train), len(cls.train_list))]
    all_labels = _some_labels(rng, n_train, num_classes)
    members, batches, start = {}, [], 0
    for (filename, _), n in zip(cls.train_list, batch_sizes):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = all_labels[start : start + n].tolist()
        start += n
        entry = {"batch_label": filename, "data": data, label_key: labels}
        if name == "cifar100":
            entry["coarse_labels"] = [label // 5 for label in labels]
        members[filename] = pickle.dumps(entry, protocol=2)
        batches.append((data, labels))
    test_data = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_labels = _some_labels(rng, n_test, num_classes).tolist()
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
    attributes = {
        "tgz_md5": md5(archive),
        "train_list": [[f, md5(members[f])] for f, _ in cls.train_list],
        "test_list": [[f, md5(members[f])] for f, _ in cls.test_list],
        "meta": {**cls.meta, "md5": md5(members[cls.meta["filename"]])},
    }
    return Synthetic(name, {cls.filename: archive}, train, test, attributes)


def make_svhn(rng: np.random.Generator, n_train: int = 20, n_test: int = 10) -> Synthetic:
    cls = tvd.SVHN
    files, arrays = {}, {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # SVHN's own layout (H, W, C, N)
        raw = (np.arange(n) % 10 + 1).astype(np.uint8)  # labels 1..10, 10 is the digit 0
        buffer = io.BytesIO()
        scipy.io.savemat(buffer, {"X": x, "y": raw.reshape(-1, 1)})
        files[cls.split_list[split][1]] = buffer.getvalue()
        arrays[split] = (x.transpose(3, 2, 0, 1), np.where(raw == 10, 0, raw).astype(np.int64))
    split_list = dict(cls.split_list)
    for split in ("train", "test"):
        url, filename, _ = split_list[split]
        split_list[split] = [url, filename, md5(files[filename])]
    return Synthetic("svhn", files, arrays["train"], arrays["test"], {"split_list": split_list})


def make_synthetic(name: str, seed: int = 0, n_train: int | None = None, n_test: int | None = None) -> Synthetic:
    """A dataset in its torchvision download format; sizes default to a few dozen images."""
    rng = np.random.default_rng(seed)
    sizes = {key: value for key, value in (("n_train", n_train), ("n_test", n_test)) if value is not None}
    if name in ("mnist", "fashionmnist"):
        return make_mnist(name, rng, **sizes)
    if name in ("cifar10", "cifar100"):
        return make_cifar(name, rng, **sizes)
    return make_svhn(rng, **sizes)


_SITECUSTOMIZE = '''"""Written by tests/torchvision_files.py: torchvision's md5s set to those of synthetic dataset files."""
import json, os, sys

_ATTRIBUTES = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "md5_attributes.json")))


class _SetMd5s:
    """Runs torchvision.datasets' own loader, then sets the md5 attributes of its dataset classes."""

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision.datasets":
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else getattr(finder, "find_spec", lambda *a: None)(name, path, target)
            if spec is not None:
                break
        else:
            return None
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            for cls, attributes in _ATTRIBUTES.items():
                for attribute, value in attributes.items():
                    setattr(getattr(module, cls), attribute, value)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _SetMd5s())
'''


def md5_site(directory: Path, datasets: list[Synthetic]) -> Path:
    """A folder to put on a subprocess's PYTHONPATH: its ``sitecustomize`` gives torchvision these datasets' md5s."""
    directory.mkdir(parents=True, exist_ok=True)
    attributes = {TV_CLASSES[d.name]: d.md5_attributes for d in datasets}
    (directory / "md5_attributes.json").write_text(json.dumps(attributes))
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    return directory


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
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # a client that read the headers only
            self.close_connection = True

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
