"""Checkpoint files: atomic saves, safe loads, and rebuilding the model a checkpoint describes.

A checkpoint is a plain dict that `torch.load(weights_only=True)` accepts:
``{"format": 1, "model": {"name", "in_channels", "image_size", "num_classes", "options"},
"state_dict": ..., "epoch": int, "run": dict, "trainer": dict}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hessian_spectra.atomic import atomic_write

FORMAT_VERSION = 1


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename.

    Saving through an open handle keeps the archive's internal name fixed, so equal objects give equal bytes.
    """

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)

    atomic_write(path, write)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no pickled code runs)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a hessian-spectra checkpoint (format {FORMAT_VERSION})")
    return ckpt


def model_spec(name: str, in_channels: int, image_size: int, num_classes: int, options: dict | None = None) -> dict:
    """The model description stored in every checkpoint."""
    return {
        "name": name,
        "in_channels": int(in_channels),
        "image_size": int(image_size),
        "num_classes": int(num_classes),
        "options": dict(options or {}),
    }


def build_from_spec(spec: dict) -> nn.Module:
    """Construct the (freshly initialised) model a spec describes."""
    from hessian_spectra.models import build_model

    return build_model(spec["name"], spec["in_channels"], spec["image_size"], spec["num_classes"], **spec["options"])


def model_from_checkpoint(ckpt: dict | str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of a checkpoint (or checkpoint path) with its weights and buffers loaded."""
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt, map_location)
    model = build_from_spec(ckpt["model"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location)


def epoch_checkpoint(run_dir: str | Path, epoch: int) -> Path:
    """Path of a run's checkpoint after ``epoch`` (0: the initial weights)."""
    return Path(run_dir) / "checkpoints" / f"epoch_{epoch:04d}.pt"


def trained_run(run_dir: str | Path) -> tuple[dict, list[Path]]:
    """A trained run's config (``run.json``) and its checkpoints of epochs 0 .. ``epochs``, every one present."""
    run = json.loads((Path(run_dir) / "run.json").read_text())
    paths = [epoch_checkpoint(run_dir, epoch) for epoch in range(run["epochs"] + 1)]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"run {run['key']}: {len(missing)} checkpoint(s) missing, first {missing[0]} (train the run first)"
        )
    return run, paths
