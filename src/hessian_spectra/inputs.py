"""Up-front checks of command-line inputs: each failure is one line naming the flag, what is wrong and what fits.

Torch-free at import (the Snakefile's input functions use ``config_entry``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from hessian_spectra import layout
from hessian_spectra.runs import subset_key, subset_spec

T = TypeVar("T")

# a run's data settings that a Hessian subset's spec copies; the rest of the spec is the selection
_DATA_KEYS = ("dataset", "image_size", "normalization", "valid_size", "split_seed")


def config_entry(entries: Mapping[str, T], key: str, target: str, what: str, where: str) -> T:
    """``entries[key]``, for a target's wildcard; a key the config does not have raises ValueError naming the target
    and the keys it does have (``what``: the kind of key; ``where``: what defines them)."""
    if key not in entries:
        raise ValueError(
            f"{target}: {what} {key} is not in {where}; its {what}s: {', '.join(entries) or 'none (the study is off)'}"
        )
    return entries[key]


def check_subset_fits(
    subset: str, meta: dict, images: Sequence[int], labels_max: int, checkpoint: str, ckpt: dict,
    subset_flag: str = "--data", checkpoint_flag: str = "--checkpoint",
) -> None:
    """A Hessian subset of ``images`` shape (N, C, H, W) and largest label ``labels_max`` must fit the model of
    ``ckpt``: its channels, image size and classes; else ValueError naming both flags and, where the checkpoint's
    run says which, the path of the subset with the same selection made for that run."""
    spec = ckpt["model"]
    channels, height, width = (int(n) for n in images[1:])
    wanted = (spec["in_channels"], spec["image_size"], spec["image_size"])
    if (channels, height, width) != wanted:
        raise ValueError(
            f"{subset_flag} {subset}: images are {channels}x{height}x{width} (channels x height x width), but "
            f"{checkpoint_flag} {checkpoint} was trained on {'x'.join(map(str, wanted))}; {_fitting(meta, ckpt)}"
        )
    if labels_max >= spec["num_classes"]:
        raise ValueError(
            f"{subset_flag} {subset}: has label {labels_max}, but the model of {checkpoint_flag} {checkpoint} has "
            f"{spec['num_classes']} classes; {_fitting(meta, ckpt)}"
        )


def _fitting(meta: dict, ckpt: dict) -> str:
    """What to give instead: the subset of ``meta``'s selection made for the checkpoint's run, or its shape."""
    run: dict[str, Any] = ckpt.get("run") or {}
    selection = {key: value for key, value in (meta or {}).items() if key not in _DATA_KEYS}
    try:
        path = layout.subset(subset_key(subset_spec(run, selection)))
    except (KeyError, TypeError):
        spec = ckpt["model"]
        return (f"give a subset of its dataset at {spec['image_size']}px with {spec['in_channels']} channel(s) "
                "(hessian-spectra subset)")
    return f"the subset with this selection for its run is {path} (Snakemake makes it)"


def check_walk_subset(checkpoints: Sequence[str], subset: str) -> None:
    """``check_subset_fits`` for a command that walks a run's checkpoints (``--checkpoints``, ``--subset``), on its
    first checkpoint, before any epoch is measured."""
    from hessian_spectra.checkpoint import load_checkpoint
    from hessian_spectra.data.subset import load_subset

    x, y, meta = load_subset(subset)
    if len(x) == 0:
        raise ValueError(f"--subset {subset}: holds no samples")
    ckpt = load_checkpoint(checkpoints[0])
    check_subset_fits(subset, meta, x.shape, int(y.max()), checkpoints[0], ckpt, "--subset", "--checkpoints")
