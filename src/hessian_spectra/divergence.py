"""When a training run counts as diverged, so that no table or figure reads its curvature as a result (torch-free)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

CHANCE_FACTOR = 2.0  # an accuracy below twice chance is a run that learned next to nothing


def divergence(history: pd.DataFrame, num_classes: int) -> str:
    """Why a run diverged, from its per-epoch history (empty when it did not): its final training loss is not
    finite or above its initial one, or its final validation (else test) accuracy is below twice chance."""
    history = history.sort_values("epoch")
    first, last = history.iloc[0], history.iloc[-1]
    if not math.isfinite(last["train_loss"]):
        return "training loss not finite"
    if last["train_loss"] > first["train_loss"]:
        return f"training loss rose from {first['train_loss']:.3g} to {last['train_loss']:.3g}"
    column = "valid_acc" if "valid_acc" in history and history["valid_acc"].notna().any() else "test_acc"
    chance = 1.0 / num_classes
    if last[column] < CHANCE_FACTOR * chance:
        return f"final {column} {last[column]:.3g} below twice chance ({chance:.3g})"
    return ""
