"""Before the DAG is built, deleted checkpoints come back from training's store.

Snakemake (since 7.7) ignores a deleted intermediate file as long as what was built from it is still there, so a
deleted checkpoint would never be remade. Training keeps every checkpoint in the run's store (hard links), so a
deleted one is relinked from there: the same bytes, so everything built from it stays valid. One whose stored copy
is gone or unreadable is *lost*: the run must train again from its last intact checkpoint. Torch-free unless a
stored copy has to be checked.
"""

from __future__ import annotations

import os
from pathlib import Path

from hessian_spectra.layout import run_files


def _intact(stored: Path, key: str, epoch: int) -> bool:
    from hessian_spectra.checkpoint import UnreadableFileError, load_checkpoint

    try:
        ckpt = load_checkpoint(stored)
    except UnreadableFileError:
        return False
    return ckpt["epoch"] == epoch and ckpt["run"].get("key") == key


def restore_checkpoints(key: str, epochs: int) -> tuple[list[str], list[str]]:
    """(restored, lost) published checkpoints of a trained run (one with a ``run.json``); untrained runs have
    neither."""
    files = run_files(key)
    restored: list[str] = []
    lost: list[str] = []
    if not Path(files.run_json).is_file():
        return restored, lost
    for epoch in range(epochs + 1):
        published, stored = Path(files.checkpoint(epoch)), Path(files.stored(epoch))
        if published.is_file():
            continue
        if stored.is_file() and _intact(stored, key, epoch):
            try:
                os.link(stored, published)
            except FileExistsError:  # another Snakemake process (a cluster job parsing the workflow) was first
                pass
            restored.append(str(published))
        else:
            lost.append(str(published))
    return restored, lost
