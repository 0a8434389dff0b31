"""Data augmentation on batches of tensors: random shifts with zero fill and horizontal flips."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def draw_shift_flip(
    n: int, generator: torch.Generator, max_shift: int = 4, flip: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample offsets ``(dy, dx)`` in ``[-max_shift, max_shift]`` and flip flags, drawn from ``generator``.

    Drawn on the generator's device in a fixed order (dy, dx, flips), so a seeded generator gives the same
    transform whatever device the images are on.
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    device = generator.device
    dy = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator, device=device)
    dx = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator, device=device)
    if flip:
        flips = torch.randint(0, 2, (n,), generator=generator, device=device).bool()
    else:
        flips = torch.zeros(n, dtype=torch.bool, device=device)
    return dy, dx, flips


def apply_shift_flip(x: Tensor, dy: Tensor, dx: Tensor, flips: Tensor) -> Tensor:
    """``out[n, :, i, j] = f(x[n])[:, i - dy[n], j - dx[n]]`` (zero outside), ``f`` = horizontal flip where ``flips[n]``.

    Content moves down by ``dy`` and right by ``dx``; one gather over a zero-padded copy, no per-sample loop.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    dy, dx, flips = dy.to(x.device), dx.to(x.device), flips.to(x.device)
    pad = int(max(dy.abs().max().item(), dx.abs().max().item())) if n else 0
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    rows = torch.arange(h, device=x.device).unsqueeze(0) - dy.unsqueeze(1) + pad  # (N, H)
    cols = torch.arange(w, device=x.device).unsqueeze(0) - dx.unsqueeze(1)  # (N, W), column of f(x)
    cols = torch.where(flips.unsqueeze(1), w - 1 - cols, cols) + pad
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, channel, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


def shift_flip(x: Tensor, generator: torch.Generator, max_shift: int = 4, flip: bool = True) -> Tensor:
    """Random translations of up to ``max_shift`` pixels (zero fill) and random horizontal flips, per sample.

    The random draws come from ``generator`` (see :func:`draw_shift_flip`); the images stay on their device.
    """
    dy, dx, flips = draw_shift_flip(len(x), generator, max_shift, flip)
    return apply_shift_flip(x, dy, dx, flips)
