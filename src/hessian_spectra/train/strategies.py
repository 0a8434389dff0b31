"""Optimizer strategies: what differs between plain SGD, NSGD and ABSA, behind hooks the loop calls.

A strategy builds the torch optimizer, says how an epoch's batches are formed (effective batch, micro-batch
for gradient accumulation, a learning-rate factor), may rewrite a batch (adversarial samples), and may
record extra history columns at the start and end of each epoch. Its state travels in every checkpoint.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


@dataclass
class EpochPlan:
    """How one epoch is run: samples per optimizer step, per forward pass, and an lr multiplier."""

    batch_size: int
    micro_batch_size: int
    lr_factor: float = 1.0


@dataclass
class TrainContext:
    """What a strategy may use: the run config, device, loss, (for NSGD) the fixed Hessian subset, and the product
    kind of the curvature operators it builds (NSGD's and ABSA's eigenvalues)."""

    run: dict
    device: torch.device
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    subset: tuple[torch.Tensor, torch.Tensor] | None
    train_data: tuple[torch.Tensor, torch.Tensor]
    products: str = "cached"
    extras: dict = field(default_factory=dict)


class Strategy:
    """Plain momentum SGD with L2 (``weight_decay``): the behaviour every other strategy extends."""

    def __init__(self, ctx: TrainContext, model: nn.Module):
        self.ctx = ctx
        self.model = model
        self.optimizer = self.make_optimizer()

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The torch optimizer: SGD with the run's lr, momentum and L2."""
        run = self.ctx.run
        return torch.optim.SGD(
            self.model.parameters(), lr=run["lr"], momentum=run["momentum"], weight_decay=run["l2"]
        )

    def epoch_plan(self, epoch: int) -> EpochPlan:
        """How ``epoch`` is run: the run's batch size, no accumulation, no lr factor."""
        batch_size = self.ctx.run["batch_size"]
        return EpochPlan(batch_size=batch_size, micro_batch_size=batch_size)

    def prepare_batch(self, x: torch.Tensor, y: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch as trained on (here unchanged)."""
        return x, y

    def on_epoch_start(self, epoch: int) -> dict:
        """Work before ``epoch`` starts; returns extra history columns (here none)."""
        return {}

    def on_epoch_end(self, epoch: int, metrics: dict) -> dict:
        """Work after ``epoch``, given its metrics; returns extra history columns (here none)."""
        return {}

    def state_dict(self) -> dict:
        """The strategy's state, saved in every checkpoint (here none)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore the state ``state_dict`` returned."""
        pass


# optimizer name -> "module:class" of its strategy (imported when a run uses it)
STRATEGIES: dict[str, str] = {
    "sgd": "hessian_spectra.train.strategies:Strategy",
    "nsgd": "hessian_spectra.train.nsgd:NSGDStrategy",
    "absa": "hessian_spectra.train.absa:ABSAStrategy",
}


def make_strategy(ctx: TrainContext, model: nn.Module) -> Strategy:
    """The strategy named by ``run["optimizer"]["name"]``."""
    name = ctx.run["optimizer"]["name"]
    if name not in STRATEGIES:
        raise ValueError(f"optimizer {name!r} is not available; known: {', '.join(STRATEGIES)}")
    module, cls = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), cls)(ctx, model)
