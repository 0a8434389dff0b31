"""Data from anywhere: an ``ImageFolder`` tree (``train/`` and ``test/``, one subfolder per class) or a file of
tensors (``.pt`` or ``.npz`` with ``train_images``, ``train_labels``, ``test_images``, ``test_labels``).

Inspecting a dataset (its classes, channels, size and split sizes) needs no torch, so the Snakefile checks a run
against its data at parse time, before any job. It also checks the data (``data.check``: finite pixels, labels
0..C-1 with every class in both splits, one shape): a folder from its class folders and image headers, a tensor
file from its arrays, once: a file that passed is remembered by its SHA-256 (``~/.cache/hessian-spectra``).
Loading returns images in [0, 1] (uint8 / 255) as stored.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from hessian_spectra.atomic import atomic_write
from hessian_spectra.data.check import SPLITS, check_splits
from hessian_spectra.data.info import DatasetInfo
from hessian_spectra.walk import file_digest

log = logging.getLogger(__name__)

TENSOR_SUFFIXES = (".pt", ".npz")
TENSOR_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
# torchvision.datasets.folder.IMG_EXTENSIONS
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_CHANNELS = {"L": 1, "RGB": 3}
CHECKS_VERSION = 1  # bump when data.check checks more, so that files checked before are checked again


def is_data_path(dataset: str) -> bool:
    """Whether a run's ``dataset`` is a path (it has a ``/`` or a ``.pt``/``.npz`` suffix) rather than a name."""
    return "/" in dataset or dataset.endswith(TENSOR_SUFFIXES)


def _folder_files(root: Path) -> dict[str, list[tuple[Path, int]]]:
    """``split -> [(image file, class index)]``; classes are the sorted subfolders of ``train/``, as ImageFolder."""
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise ValueError(f"{root}: an ImageFolder dataset needs {split}/ with one subfolder per class")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    test_classes = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
    if not classes or classes != test_classes:
        raise ValueError(f"{root}: train/ and test/ must hold the same class folders, got {classes} and {test_classes}")
    files = {}
    for split in ("train", "test"):
        files[split] = [
            (path, index)
            for index, name in enumerate(classes)
            for path in sorted((root / split / name).iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not files[split]:
            raise ValueError(f"{root}/{split}: no images ({', '.join(IMAGE_SUFFIXES)})")
        empty = sorted(set(classes) - {classes[index] for _, index in files[split]})
        if empty:
            raise ValueError(f"{root}/{split}: no images in class folder(s) {', '.join(empty)}; every class needs images "
                             "in train/ and in test/")
    return files


def _image_shape(path: Path) -> tuple[int, int, int]:
    """(channels, height, width) of one image, read from its header."""
    from PIL import Image

    with Image.open(path) as image:
        mode, (width, height) = image.mode, image.size
    return _CHANNELS.get(mode, 3), height, width


def _inspect_folder(root: Path) -> DatasetInfo:
    files = _folder_files(root)
    shapes = {_image_shape(path) for split in files.values() for path, _ in split}
    if len(shapes) != 1:
        raise ValueError(f"{root}: images differ in channels or size ({sorted(shapes)}); store them at one size")
    ((channels, height, width),) = shapes
    if height != width:
        raise ValueError(f"{root}: images are {height}x{width}; square images are needed")
    num_classes = max(index for _, index in files["train"]) + 1
    return DatasetInfo(str(root), num_classes, channels, height, "folder", len(files["train"]), len(files["test"]))


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in TENSOR_KEYS if key not in arrays]
            if missing:
                raise ValueError(f"{path}: missing array(s) {', '.join(missing)} (needs {', '.join(TENSOR_KEYS)})")
            return {key: arrays[key] for key in TENSOR_KEYS}
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not readable by torch.load(weights_only=True) ({err})".splitlines()[0]) from None
    if not isinstance(payload, dict) or any(key not in payload for key in TENSOR_KEYS):
        raise ValueError(f"{path}: must hold a dict of tensors {', '.join(TENSOR_KEYS)}")
    return {key: torch.as_tensor(payload[key]).numpy() for key in TENSOR_KEYS}


def _image_array(images: np.ndarray, path: Path, split: str) -> np.ndarray:
    """Images as (N, C, H, W): (N, H, W) gains a channel axis."""
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(f"{path}: {split}_images must be (N, H, W) or (N, C, H, W) of square images, got {images.shape}")
    return images


def _checked_tensors(path: Path) -> tuple[dict[str, np.ndarray], int]:
    """The arrays of a tensor file, checked (``data.check``), and its number of classes."""
    arrays = _read_tensors(path)
    for split in ("train", "test"):
        images = _image_array(arrays[f"{split}_images"], path, split)
        labels = arrays[f"{split}_labels"]
        if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{path}: {split}_labels must be integers, one per image ({labels.shape} for {images.shape})")
        if len(labels) == 0:
            raise ValueError(f"{path}: {split}_labels must be non-empty class indices 0, 1, ...")
        arrays[f"{split}_images"] = images
    num_classes = check_splits(
        str(path),
        {split: arrays[f"{split}_images"] for split in SPLITS},
        {split: arrays[f"{split}_labels"] for split in SPLITS},
    )
    return arrays, num_classes


def _check_cache(digest: str) -> Path:
    """Where the inspection of a tensor file with SHA-256 ``digest`` is kept once it passed its checks."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "hessian-spectra" / f"data-checks-v{CHECKS_VERSION}" / f"{digest}.json"


def _inspect_tensors(path: Path) -> DatasetInfo:
    """A tensor file's facts, from the cache of checked files when its bytes were checked before."""
    cache = _check_cache(file_digest(path))
    try:
        return DatasetInfo(**{**json.loads(cache.read_text()), "name": str(path)})
    except (OSError, ValueError, TypeError):
        pass
    arrays, num_classes = _checked_tensors(path)
    _, channels, size, _ = arrays["train_images"].shape
    info = DatasetInfo(
        str(path), num_classes, channels, size, "tensors", len(arrays["train_labels"]), len(arrays["test_labels"])
    )
    try:
        atomic_write(cache, lambda tmp: Path(tmp).write_text(json.dumps(asdict(info))))
    except OSError as err:
        log.warning("%s: cannot cache its checks in %s (%s); they run again next time", path, cache, err)
    return info


@lru_cache(maxsize=None)
def inspect_data(dataset: str) -> DatasetInfo | None:
    """Classes, channels, size and split sizes of a dataset path; None while it does not exist (a rule makes it)."""
    path = Path(dataset)
    if not path.exists():
        return None
    if path.is_dir():
        return _inspect_folder(path)
    if path.suffix not in TENSOR_SUFFIXES:
        raise ValueError(f"{path}: a dataset file must end in {' or '.join(TENSOR_SUFFIXES)}")
    return _inspect_tensors(path)


def _unit(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def load_data_path(dataset: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """One split of a dataset path as float32 images ``(N, C, H, W)`` and int64 labels."""
    path = Path(dataset)
    split = "train" if train else "test"
    if path.is_dir():
        from PIL import Image

        files = _folder_files(path)[split]
        channels = inspect_data(dataset).in_channels
        mode = "L" if channels == 1 else "RGB"
        images = np.stack([np.asarray(Image.open(file).convert(mode)) for file, _ in files])
        images = images[:, None] if channels == 1 else images.transpose(0, 3, 1, 2)
        return _unit(images), np.array([label for _, label in files], dtype=np.int64)
    arrays, _ = _checked_tensors(path)
    return _unit(arrays[f"{split}_images"]), arrays[f"{split}_labels"].astype(np.int64)
