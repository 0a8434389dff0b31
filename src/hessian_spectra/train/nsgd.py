"""Nudged SGD (NSGD, seed 001): SGD whose step along the top-KK Hessian eigenvectors is scaled by ``gamma``.

The source (kudkudak/dnn_sharpest_directions, ``src/optimizers.py``, ``type="correct_v"``) takes, at the start of
every epoch, P = the top-KK Lanczos eigenvectors of the Hessian on a fixed subset (L2 included, inference mode),
and at every step computes ``v = m*buf - lr*g``, ``v' = v + (gamma - 1) P P^T v``, ``theta += v'``, keeping the
uncorrected ``v`` as the momentum buffer. ``NSGD`` runs ``torch.optim.SGD``'s own step and then adds
``(gamma - 1) P P^T`` of the step SGD took (``-lr`` times its direction: the momentum buffer, or ``g + l2*theta``
when m = 0), so ``gamma = 1`` is bitwise SGD and the buffer stays uncorrected.

One difference from the source: PyTorch's buffer is ``buf = m*buf + g`` with ``theta -= lr*buf``, so when the
learning rate changes the new lr scales the whole buffer (past gradients included), whereas the source's ``v``
carries each gradient with the lr of its own step. For a constant lr the two are identical.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from hessian_spectra.curvature import CurvatureOperator, lanczos, make_batches
from hessian_spectra.curvature.convergence import converged_within, relative_residual
from hessian_spectra.train.loop import epoch_generator
from hessian_spectra.train.strategies import Strategy, TrainContext

log = logging.getLogger(__name__)

# Lanczos settings of the per-epoch eigenvectors (the run config carries gamma, kk and optionally max_steps).
LANCZOS_TOL = 1e-3
LANCZOS_MAX_STEPS = 100
HVP_BATCH = 256
LANCZOS_STREAM = 2  # epoch_generator stream of the start vector


class NSGD(torch.optim.SGD):
    """``torch.optim.SGD`` (momentum, ``weight_decay`` = L2) with the step along ``set_directions``'s P scaled by
    ``gamma``; without directions, or with ``gamma == 1``, it is SGD exactly."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        gamma: float = 1.0,
    ) -> None:
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.gamma = float(gamma)
        self._blocks: list[tuple[Tensor, Tensor]] = []

    def set_directions(self, vectors: Tensor, params: Sequence[Tensor]) -> None:
        """P = ``vectors`` (n, kk) with orthonormal columns, whose rows lie over ``params`` flattened in order."""
        sizes = [p.numel() for p in params]
        if vectors.ndim != 2 or vectors.shape[0] != sum(sizes):
            raise ValueError(f"directions must be ({sum(sizes)}, kk), got {tuple(vectors.shape)}")
        known = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) not in known for p in params):
            raise ValueError("directions given over parameters this optimizer does not update")
        self._blocks = list(zip(params, vectors.to(torch.float64).split(sizes)))

    def _directions_before(self) -> dict[int, Tensor]:
        """SGD's step direction where it is known before the step: ``g + l2*theta`` for groups without momentum."""
        out = {}
        for group in self.param_groups:
            if group["momentum"] == 0:
                for p in group["params"]:
                    if p.grad is not None:
                        out[id(p)] = p.grad.add(p, alpha=group["weight_decay"])
        return out

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """SGD's step with its component along the directions P scaled by ``gamma``; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.gamma == 1.0 or not self._blocks:
            super().step()
            return loss
        before = self._directions_before()
        super().step()
        lr_of = {id(p): group["lr"] for group in self.param_groups for p in group["params"]}
        moved = []  # (param, its rows of P, the step SGD took as a flat float64 vector)
        for p, block in self._blocks:
            direction = before.get(id(p))
            if direction is None and p.grad is not None:
                direction = self.state[p]["momentum_buffer"]
            if direction is not None:
                moved.append((p, block, direction.reshape(-1).to(torch.float64) * -lr_of[id(p)]))
        if moved:
            coeffs = torch.stack([block.T @ v for _, block, v in moved]).sum(0)
            for p, block, _ in moved:
                p.add_(((self.gamma - 1.0) * (block @ coeffs)).view_as(p).to(p.dtype))
        return loss


class NSGDStrategy(Strategy):
    """NSGD in the training loop: P refreshed by Lanczos at the start of every epoch on the run's Hessian subset.

    The start vector is drawn from ``epoch_generator(seed, epoch, 2)``, so a resumed run recomputes exactly the
    P of an uninterrupted one. History columns per epoch (at its start): ``nsgd_lambda{i}``, ``nsgd_residual{i}``,
    ``nsgd_relative_residual{i}`` and ``nsgd_converged{i}`` (relative residual <= ``LANCZOS_TOL``) for i = 1..kk,
    and ``nsgd_lanczos_steps``. The state in checkpoint e is the P that
    epoch e used.
    """

    def __init__(self, ctx: TrainContext, model: nn.Module):
        optimizer = ctx.run["optimizer"]
        missing = [key for key in ("gamma", "kk") if key not in optimizer]
        if missing:
            needs = " and ".join(f"optimizer.{key}" for key in missing)
            raise ValueError(f"run {ctx.run.get('key')}: optimizer nsgd needs {needs}")
        if ctx.subset is None:
            raise ValueError(f"run {ctx.run.get('key')}: optimizer nsgd trains on the Hessian subset; none was given")
        self.gamma, self.kk = float(optimizer["gamma"]), int(optimizer["kk"])
        self.max_steps = int(optimizer.get("max_steps", LANCZOS_MAX_STEPS))
        self.param_names: list[str] = []
        self.directions: Tensor | None = None
        self.eigenvalues: Tensor | None = None
        self.epoch: int | None = None
        super().__init__(ctx, model)

    def make_optimizer(self) -> NSGD:
        """NSGD over the model's parameters with the run's lr, momentum, L2 and this strategy's gamma."""
        run = self.ctx.run
        return NSGD(self.model.parameters(), lr=run["lr"], momentum=run["momentum"], weight_decay=run["l2"],
                    gamma=self.gamma)

    def on_epoch_start(self, epoch: int) -> dict:
        """Set the top eigenvectors on the Hessian subset as the optimizer's directions; their eigenvalues,
        residuals and Lanczos steps as history columns."""
        x, y = self.ctx.subset
        op = CurvatureOperator(self.model, make_batches(x, y, HVP_BATCH), loss_fn=self.ctx.loss_fn,
                               l2=self.ctx.run["l2"], mode=self.ctx.products)
        gen = epoch_generator(self.ctx.run["seed"], epoch, LANCZOS_STREAM)
        k = min(self.kk, op.shape[0])
        result = lanczos(op, k=k, tol=LANCZOS_TOL, max_steps=self.max_steps, seed=gen, eigenvectors=True)
        self.param_names, self.epoch = list(op.param_names), epoch
        self.directions = result.eigenvectors
        self.eigenvalues = torch.from_numpy(result.eigenvalues)
        self._apply()
        log.info("nsgd epoch %d: top-%d eigenvalues %s (max residual %.3g, %d Lanczos steps)", epoch, k,
                 np.array2string(result.eigenvalues, precision=4), np.nanmax(result.residuals), result.steps)
        row: dict = {}
        for i, (value, residual) in enumerate(zip(result.eigenvalues, result.residuals), 1):
            row[f"nsgd_lambda{i}"] = float(value)
            row[f"nsgd_residual{i}"] = float(residual)
            row[f"nsgd_relative_residual{i}"] = relative_residual(value, residual)
            row[f"nsgd_converged{i}"] = converged_within(value, residual, LANCZOS_TOL)
        row["nsgd_lanczos_steps"] = result.steps
        return row

    def _apply(self) -> None:
        named = dict(self.model.named_parameters())
        self.optimizer.set_directions(self.directions, [named[name] for name in self.param_names])

    def state_dict(self) -> dict:
        """The current directions and eigenvalues with their epoch, for a checkpoint (empty before the first)."""
        if self.directions is None:
            return {}
        return {"epoch": self.epoch, "param_names": list(self.param_names), "directions": self.directions,
                "eigenvalues": self.eigenvalues}

    def load_state_dict(self, state: dict) -> None:
        """Restore the state ``state_dict`` returned and give the directions back to the optimizer."""
        if not state:
            return
        self.epoch, self.param_names = state["epoch"], list(state["param_names"])
        self.directions = state["directions"].to(self.ctx.device)
        self.eigenvalues = state["eigenvalues"]
        self._apply()
