"""``hessian-spectra download``: fetch a dataset with checksums, or check a pre-downloaded root, and mark it ready.

A download goes to ``ROOT/NAME`` (that dataset's torchvision root); ``--check-only`` verifies ``ROOT`` itself
as a torchvision root (a pre-downloaded ``data_root``). On success ``READY.json`` in the dataset's torchvision
root (or ``--ready``) lists every file with its size and md5, once the labels and image shapes passed their
checks (``data.check``); on failure it is absent, so a workflow rule whose output is that file never sees a
half-downloaded or mislabelled dataset.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from hessian_spectra.data.catalog import DATASET_NAMES

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra download``: the dataset, its root, a mirror, ``--check-only``, the ready file."""
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument(
        "--root", required=True, help="download: the dataset goes to ROOT/NAME; --check-only: a torchvision root"
    )
    parser.add_argument(
        "--mirror",
        default=None,
        help="base URL replacing torchvision's download hosts (the URL up to the file name; {name} = dataset)",
    )
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="verify an existing (pre-downloaded) root with torchvision's md5s; never download",
    )
    parser.add_argument(
        "--ready", default=None, help="where to write the READY.json manifest (default ROOT/NAME/READY.json)"
    )


def run(args: argparse.Namespace) -> None:
    """Download (or only check) the dataset and, once its files pass the checks, write its ready file."""
    from hessian_spectra.atomic import atomic_write
    from hessian_spectra.data.catalog import needs_download
    from hessian_spectra.data.download import (
        READY_FILE,
        check_contents,
        manifest,
        prepare_dataset,
        torchvision_root,
        verify_dataset,
    )

    tv_root = Path(args.root) if args.check_only else torchvision_root(args.dataset, args.root)
    ready = Path(args.ready) if args.ready else tv_root / READY_FILE
    try:
        ready.unlink(missing_ok=True)
    except OSError as err:
        raise RuntimeError(f"cannot remove the old {ready}: {err} (pass --ready PATH for a read-only root)") from err
    if args.check_only:
        verify_dataset(args.dataset, tv_root)
        log.info("dataset %s: %s verified", args.dataset, tv_root)
    else:
        prepare_dataset(args.dataset, args.root, mirror=args.mirror)
    listing = manifest(args.dataset, tv_root)
    if needs_download(args.dataset):
        listing["classes"] = check_contents(args.dataset, tv_root)
        log.info("dataset %s: labels 0..%d, every class in train and test", args.dataset, listing["classes"] - 1)
    text = json.dumps(listing, indent=2, sort_keys=True) + "\n"
    try:
        atomic_write(ready, lambda tmp: Path(tmp).write_text(text))
    except OSError as err:
        raise RuntimeError(f"cannot write {ready}: {err} (pass --ready PATH for a read-only root)") from err
    log.info("dataset %s: wrote %s", args.dataset, ready)
