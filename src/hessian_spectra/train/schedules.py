"""Learning-rate schedules as multipliers of the base rate, with state that checkpoints carry."""

from __future__ import annotations

import math


class LrSchedule:
    """``constant``, ``step`` (x gamma at each milestone epoch) or ``plateau`` (x factor after `patience` epochs
    without improvement of the monitored metric, not below ``min_lr``)."""

    def __init__(self, spec: dict, base_lr: float):
        self.spec = spec
        self.base_lr = base_lr
        self.plateau_factor = 1.0
        self.best = math.inf
        self.bad_epochs = 0

    def lr(self, epoch: int) -> float:
        """Learning rate used during ``epoch`` (1-based: epoch e trains from checkpoint e-1 to e)."""
        kind = self.spec["kind"]
        if kind == "constant":
            return self.base_lr
        if kind == "step":
            passed = sum(1 for milestone in self.spec.get("milestones", []) if epoch > milestone)
            return self.base_lr * self.spec.get("gamma", 0.1) ** passed
        if kind == "plateau":
            return max(self.base_lr * self.plateau_factor, self.spec.get("min_lr", 0.0))
        raise ValueError(f"unknown schedule kind {kind!r}")

    def observe(self, metrics: dict) -> None:
        """Feed the end-of-epoch metrics (plateau only)."""
        if self.spec["kind"] != "plateau":
            return
        monitor = self.spec.get("monitor", "valid_loss")
        if monitor not in metrics:
            raise ValueError(f"plateau schedule monitors {monitor!r}, which this run does not record")
        value = metrics[monitor]
        if value < self.best:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.spec.get("patience", 10):
            self.plateau_factor *= self.spec.get("factor", 0.1)
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        """The plateau state, for a checkpoint."""
        return {"plateau_factor": self.plateau_factor, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        """Restore the state ``state_dict`` returned."""
        self.plateau_factor = state["plateau_factor"]
        self.best = state["best"]
        self.bad_epochs = state["bad_epochs"]
