"""Datasets: catalogue, checksummed downloads, tensor loading, augmentation and the Hessian subset.

The catalogue names are imported eagerly (torch-free, for the Snakefile); everything that needs torch or
torchvision is re-exported lazily, so ``import hessian_spectra.data.catalog`` stays cheap.
"""

from __future__ import annotations

import importlib

from hessian_spectra.data.catalog import DATASET_NAMES, DatasetInfo, dataset_info, needs_download

_LAZY = {
    "prepare_dataset": "download",
    "verify_dataset": "download",
    "torchvision_root": "download",
    "load_split": "load",
    "load_splits": "load",
    "shift_flip": "augment",
    "select_subset": "subset",
    "save_subset": "subset",
    "load_subset": "subset",
}

__all__ = ["DATASET_NAMES", "DatasetInfo", "dataset_info", "needs_download", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"hessian_spectra.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
