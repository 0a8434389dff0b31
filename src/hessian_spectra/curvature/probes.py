"""Random probe vectors, drawn on the CPU from a seeded generator so that every device sees the same probes."""

from __future__ import annotations

import torch
from torch import Tensor

PROBE_KINDS = ("rademacher", "gaussian")


def make_generator(seed: int | torch.Generator | None) -> torch.Generator:
    """A CPU generator: the one given, or a new one seeded with ``seed`` (0 when None)."""
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


def random_probes(
    op, k: int, kind: str = "gaussian", seed: int | torch.Generator | None = None, normalise: bool = False
) -> Tensor:
    """``k`` probes for ``op`` as an (n, k) float64 matrix (a transposed lane-major array, on ``op.device``).

    ``normalise`` scales each probe to unit norm within every segment of the operator.
    """
    if kind not in PROBE_KINDS:
        raise ValueError(f"probe kind must be one of {PROBE_KINDS}, got {kind!r}")
    gen = make_generator(seed)
    n = op.shape[0]
    if kind == "rademacher":
        X = torch.randint(0, 2, (k, n), generator=gen).to(torch.float64).mul_(2).sub_(1)
    else:
        X = torch.randn(k, n, generator=gen, dtype=torch.float64)
    if normalise:
        for lo, hi in op.segments:
            X[:, lo:hi] /= X[:, lo:hi].norm(dim=1, keepdim=True)
    return X.to(op.device).T


def segment_dot(A: Tensor, B: Tensor, segments) -> Tensor:
    """Column-wise inner products of (n, k) matrices within each segment: (segments, k)."""
    return torch.stack([(A[lo:hi] * B[lo:hi]).sum(dim=0) for lo, hi in segments])


def squeeze_segments(op, value):
    """Drop the leading segment axis of a result unless ``op`` is block-diagonal."""
    return value if op.blocks is not None else value[0]
