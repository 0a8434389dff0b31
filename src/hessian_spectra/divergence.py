"""When a training run cannot count as a result: it diverged, or it did not learn (torch-free).

A run diverged when its training loss is not finite or ended above where it started; it did not learn when its loss
went down but its final validation (else test) accuracy stayed below twice chance. No table, figure or verdict reads
the curvature of either as a result, and each is named for what it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

CHANCE_FACTOR = 2.0  # an accuracy below twice chance is a run that learned next to nothing
DIVERGED, DID_NOT_LEARN = "diverged", "did not learn"


@dataclass(frozen=True)
class Failure:
    """Why a run cannot count: its ``kind`` (``DIVERGED`` or ``DID_NOT_LEARN``) and the numbers behind it."""

    kind: str
    because: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.because}"


def failure(history: pd.DataFrame, num_classes: int) -> Failure | None:
    """Why a run cannot count, from its per-epoch history; None when it can."""
    history = history.sort_values("epoch")
    first, last = history.iloc[0], history.iloc[-1]
    start, end = first["train_loss"], last["train_loss"]
    if not math.isfinite(end):
        return Failure(DIVERGED, "training loss not finite")
    if end > start:
        return Failure(DIVERGED, f"training loss rose from {start:.3g} to {end:.3g}")
    column = "valid_acc" if "valid_acc" in history and history["valid_acc"].notna().any() else "test_acc"
    chance = 1.0 / num_classes
    if last[column] < CHANCE_FACTOR * chance:
        return Failure(DID_NOT_LEARN, f"final {column} {last[column]:.3g} below twice chance ({chance:.3g}); "
                                      f"training loss {start:.4g} -> {end:.4g}")
    return None


def divergence(history: pd.DataFrame, num_classes: int) -> str:
    """Why a run cannot count, as the study tables' ``diverged_because`` spells it (the numbers of a diverged run,
    ``"did not learn: ..."`` for the other kind); empty when it counts."""
    found = failure(history, num_classes)
    if found is None:
        return ""
    return found.because if found.kind == DIVERGED else str(found)
