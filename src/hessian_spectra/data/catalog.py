"""The datasets the pipeline knows: names, shapes, class counts and where each one comes from.

Torch-free: the Snakefile imports it at parse time to decide which datasets need a download job.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset (``native_size`` is the side of its square images as stored)."""

    name: str
    num_classes: int
    in_channels: int
    native_size: int
    source: str  # "sklearn" (embedded, no network) or "torchvision" (downloaded with checksums)

    @property
    def needs_download(self) -> bool:
        return self.source == "torchvision"


_CATALOG: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", num_classes=10, in_channels=1, native_size=8, source="sklearn"),
        DatasetInfo("mnist", num_classes=10, in_channels=1, native_size=28, source="torchvision"),
        DatasetInfo("fashionmnist", num_classes=10, in_channels=1, native_size=28, source="torchvision"),
        DatasetInfo("cifar10", num_classes=10, in_channels=3, native_size=32, source="torchvision"),
        DatasetInfo("cifar100", num_classes=100, in_channels=3, native_size=32, source="torchvision"),
        DatasetInfo("svhn", num_classes=10, in_channels=3, native_size=32, source="torchvision"),
    )
}

DATASET_NAMES: tuple[str, ...] = tuple(_CATALOG)


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry of ``name``; ``ValueError`` naming it and the allowed names if unknown."""
    try:
        return _CATALOG[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}") from None


def needs_download(name: str) -> bool:
    """Whether ``name`` is fetched from the network (torchvision) rather than embedded (scikit-learn)."""
    return dataset_info(name).needs_download
