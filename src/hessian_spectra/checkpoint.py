"""Checkpoint files: atomic saves, safe loads, and rebuilding the model a checkpoint describes.

A checkpoint is a plain dict that `torch.load(weights_only=True)` accepts:
``{"format": 1, "model": {"name", "in_channels", "image_size", "num_classes", "options"},
"state_dict": ..., "epoch": int, "run": dict, "trainer": dict}``. ``run["key"]`` and ``epoch`` say what it is:
a loader stops on a checkpoint whose path names another run or epoch.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hessian_spectra.atomic import atomic_write
from hessian_spectra.layout import checkpoint_claim
from hessian_spectra.tables import regenerate

FORMAT_VERSION = 1


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename.

    Saving through an open handle keeps the archive's internal name fixed, so equal objects give equal bytes.
    """

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)

    atomic_write(path, write)


class UnreadableFileError(ValueError):
    """A checkpoint, subset or table that cannot be read: truncated, corrupt, or not what it should be."""


def load_torch_file(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, with every failure turned into one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} missing (run Snakemake, which makes it)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as err:
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        if "Weights only load failed" in str(err):
            reason = "refused by torch.load(weights_only=True): it holds pickled objects, not plain tensors"
        else:
            reason = f"unreadable, truncated or corrupt ({detail})"
        raise UnreadableFileError(f"{path}: {what} {reason}; {regenerate(path)}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no pickled code runs); bad files, and a workflow checkpoint
    whose recorded run and epoch are not the ones its path names, raise one clear line."""
    ckpt = load_torch_file(path, "checkpoint", map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_VERSION:
        raise UnreadableFileError(
            f"{path}: not a hessian-spectra checkpoint (format {FORMAT_VERSION}); {regenerate(path)}"
        )
    _check_identity(path, ckpt)
    return ckpt


def _check_identity(path: str | Path, ckpt: dict) -> None:
    """A checkpoint at a workflow path (``results/<run key>/checkpoints/epoch_NNNN.pt``) must record that run and
    epoch."""
    claim = checkpoint_claim(path)
    if claim is None:
        return
    key, epoch = claim
    recorded = ckpt["run"].get("key") if isinstance(ckpt.get("run"), dict) else None
    if ckpt.get("epoch") != epoch or (key is not None and recorded != key):
        of_run = f" of run {recorded}" if key is not None else ""
        names = f"epoch {epoch} of run {key}" if key is not None else f"epoch {epoch}"
        raise UnreadableFileError(
            f"{path}: holds epoch {ckpt.get('epoch')}{of_run}, but its path names {names} (copied or moved by "
            f"hand?); {regenerate(path)}"
        )


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
