"""Up-front checks of command-line inputs: each failure is one line naming the flag, what is wrong and what fits.

Torch-free at import: the CLI runs ``check_studies`` before any command module is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from hessian_spectra import layout
from hessian_spectra.runs import STUDIES, subset_key, subset_spec

T = TypeVar("T")

# a run's data settings that a Hessian subset's spec copies; the rest of the spec is the selection
_DATA_KEYS = ("dataset", "image_size", "normalization", "valid_size", "split_seed")


def check_studies(values: Sequence[str] | None, flag: str = "--studies") -> list[str]:
    """The studies given to ``flag``: at least one, each one of ``STUDIES``; else ValueError naming the flag and
    the allowed names."""
    allowed = ", ".join(STUDIES)
    if not values:
        raise ValueError(f"{flag}: give at least one study of {allowed}")
    unknown = [value for value in values if value not in STUDIES]
    if unknown:
        names = ", ".join(repr(value) for value in unknown)
        raise ValueError(f"{flag}: {names} {'is not a study' if len(unknown) == 1 else 'are not studies'}; "
                         f"allowed: {allowed}")
    return list(values)


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
