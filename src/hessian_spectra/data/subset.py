"""The fixed, seeded subset of training data on which a run's Hessians are computed, chosen and saved once."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from hessian_spectra.checkpoint import UnreadableFileError, load_torch_file, save_atomic
from hessian_spectra.layout import subset_claim
from hessian_spectra.tables import regenerate

SELECTIONS = ("random", "first")
_KEYS = ("x", "y", "indices", "meta")


def select_subset(
    y: Tensor,
    *,
    per_class: int | None = None,
    size: int | None = None,
    selection: str = "random",
    seed: int = 0,
) -> Tensor:
    """Sorted int64 indices into ``y``: ``per_class`` samples of every class present, or ``size`` samples.

    ``selection="random"`` draws without replacement from a generator seeded by ``seed`` (classes in ascending
    order); ``"first"`` takes the earliest samples. Exactly one of ``per_class`` and ``size`` is given.
    """
    if (per_class is None) == (size is None):
        raise ValueError("give exactly one of per_class and size")
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; allowed: {', '.join(SELECTIONS)}")
    y = torch.as_tensor(y).reshape(-1).cpu()
    generator = torch.Generator().manual_seed(int(seed))
    if size is not None:
        if size < 1 or size > len(y):
            raise ValueError(f"subset size must be in [1, {len(y)}] (the number of samples), got {size}")
        chosen = torch.randperm(len(y), generator=generator)[:size] if selection == "random" else torch.arange(size)
    else:
        if per_class < 1:
            raise ValueError(f"per_class must be a positive integer, got {per_class}")
        parts = []
        for label in torch.unique(y).tolist():
            members = torch.nonzero(y == label).flatten()
            if len(members) < per_class:
                raise ValueError(f"class {label} has only {len(members)} samples, fewer than per_class={per_class}")
            if selection == "random":
                members = members[torch.randperm(len(members), generator=generator)[:per_class]]
            parts.append(members[:per_class])
        chosen = torch.cat(parts)
    return chosen.sort().values.to(torch.int64)


def save_subset(path: str | Path, x: Tensor, y: Tensor, indices: Tensor, meta: dict) -> None:
    """Write ``{"x", "y", "indices", "meta"}`` atomically; ``meta`` must be plain JSON-like data."""
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as err:
        raise ValueError(f"subset meta must be plain JSON-like data (str, numbers, lists, dicts): {err}") from None
    if not (len(x) == len(y) == len(indices)):
        raise ValueError(f"x, y and indices differ in length: {len(x)}, {len(y)}, {len(indices)}")
    payload = {
        "x": x.detach().cpu().contiguous(),
        "y": y.detach().cpu().to(torch.int64).contiguous(),
        "indices": torch.as_tensor(indices).cpu().to(torch.int64).contiguous(),
        "meta": dict(meta),
    }
    save_atomic(payload, path)


def build_subset(spec: dict, data_root: str | Path | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, y, indices)`` of the subset ``spec`` describes (``hessian_spectra.runs.subset_spec``): the split
    loaded and preprocessed as the runs load it, then the seeded selection."""
    from hessian_spectra.data.load import load_split

    x, y = load_split(
        spec["dataset"],
        spec["split"],
        root=data_root,
        image_size=spec["image_size"],
        normalization=spec["normalization"],
        valid_size=spec["valid_size"],
        split_seed=spec["split_seed"],
    )
    indices = select_subset(
        y, per_class=spec["per_class"], size=spec["size"], selection=spec["selection"], seed=spec["seed"]
    )
    return x[indices], y[indices], indices


def _check_identity(path: str | Path, meta: dict) -> None:
    """A subset at a workflow path (``results/subsets/<key>.pt``) must record the spec that key names."""
    from hessian_spectra.runs import subset_key

    claimed = subset_claim(path)
    if claimed is None:
        return
    try:
        recorded = subset_key(meta)
    except (KeyError, TypeError):
        recorded = None
    if recorded != claimed:
        raise UnreadableFileError(
            f"{path}: holds the subset {recorded or 'of an unrecorded spec'}, but its path names {claimed} (copied or "
            f"moved by hand?); {regenerate(path)}"
        )


def load_subset(path: str | Path, *, return_indices: bool = False):
    """``(x, y, meta)`` of a saved subset (``(x, y, indices, meta)`` with ``return_indices``).

    Loaded with ``torch.load(weights_only=True)`` (no pickled code runs) onto the CPU; an unreadable file raises
    ``UnreadableFileError`` naming it.
    """
    payload = load_torch_file(path, "Hessian subset")
    if not isinstance(payload, dict) or any(key not in payload for key in _KEYS):
        raise UnreadableFileError(
            f"{path}: not a Hessian subset file (expected keys {', '.join(_KEYS)}); {regenerate(path)}"
        )
    _check_identity(path, payload["meta"])
    if return_indices:
        return payload["x"], payload["y"], payload["indices"], payload["meta"]
    return payload["x"], payload["y"], payload["meta"]
