"""What a dataset must hold before anything trains on it (torch-free): finite pixels, labels 0..C-1 with every class
in both splits, and one image shape; each failure is one line naming the file or folder."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "test")
_CHUNK = 4096  # images checked for finite pixels at a time


def _listed(values) -> str:
    values = [int(v) for v in values]
    return ", ".join(map(str, values[:8])) + (f", ... ({len(values)} in all)" if len(values) > 8 else "")


def check_splits(
    where: str, images: dict[str, np.ndarray], labels: dict[str, np.ndarray], num_classes: int | None = None
) -> int:
    """Check the ``train`` and ``test`` images ``(N, ...)`` and integer labels of one dataset (``where`` names it) and
    return its number of classes: ``num_classes``, or one more than the largest training label."""
    for split in SPLITS:
        pixels = images[split]
        if pixels.dtype.kind not in "fc":
            continue
        for start in range(0, len(pixels), _CHUNK):
            finite = np.isfinite(pixels[start : start + _CHUNK].reshape(min(_CHUNK, len(pixels) - start), -1))
            bad = np.flatnonzero(~finite.all(axis=1))
            if len(bad):
                raise ValueError(
                    f"{where}: {split}_images has non-finite pixels (NaN or inf) in image(s) {_listed(bad + start)}"
                )
    if images["train"].shape[1:] != images["test"].shape[1:]:
        raise ValueError(
            f"{where}: train and test images differ in shape ({images['train'].shape[1:]} and {images['test'].shape[1:]})"
        )
    classes = int(labels["train"].max()) + 1 if num_classes is None else num_classes
    present = {split: np.unique(labels[split]) for split in SPLITS}
    for split in SPLITS:
        outside = present[split][(present[split] < 0) | (present[split] >= classes)]
        if len(outside):
            raise ValueError(f"{where}: {split}_labels has labels outside 0..{classes - 1}: {_listed(outside)}")
    for split in SPLITS:
        missing = np.setdiff1d(np.arange(classes), present[split])
        if len(missing):
            raise ValueError(
                f"{where}: {split} has no image of class(es) {_listed(missing)} of 0..{classes - 1} (labels must "
                "number the classes 0..C-1, every class in train and in test: a stray or mistyped label?)"
            )
    return classes
