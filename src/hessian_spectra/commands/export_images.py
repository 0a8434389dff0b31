"""``hessian-spectra export-images``: write a built-in dataset as an ImageFolder tree, a dataset from anywhere.

``train/`` and ``test/`` with one folder of PNG files per class, as torchvision's ``ImageFolder`` reads them; the
images are the dataset's as stored (``digits``: 8x8 grey levels), so a run on the folder sees the same data.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hessian_spectra.data.catalog import DATASET_NAMES

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra export-images``: the dataset, its data root and the output folder."""
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument("--out", required=True, help="output folder (replaced as a whole)")
    parser.add_argument("--data-root", default=None, help="torchvision dataset root (not needed for digits or mnist5k)")


def _write(dataset: str, root: str | None, out: Path) -> None:
    import numpy as np
    from PIL import Image

    from hessian_spectra.data.load import load_splits

    for split, (x, y) in load_splits(dataset, ("train", "test"), root=root).items():
        width = len(str(int(y.max())))
        pixels = (x.numpy() * 255).round().astype(np.uint8)
        for index, (image, label) in enumerate(zip(pixels, y.tolist())):
            folder = out / split / f"{label:0{width}d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(folder / f"{index:06d}.png")
        log.info("%s %s: %d images", dataset, split, len(y))


def run(args: argparse.Namespace) -> None:
    """Write the dataset's ImageFolder tree to ``--out`` (all of it or nothing)."""
    from hessian_spectra.atomic import atomic_dir

    atomic_dir(args.out, lambda tmp: _write(args.dataset, args.data_root, tmp))
