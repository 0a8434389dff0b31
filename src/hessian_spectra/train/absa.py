"""ABSA (seed 002): adaptive batch size with adversarial training, as a training strategy.

After every epoch the dominant Hessian eigenvalue on one seeded training batch feeds ``ABSASchedule``: when it
has halved since the reference, or after ``patience`` epochs without a change, the gradient-accumulation
ratio doubles (effective batch = base * ratio), the learning rate grows by the same factor and the fraction
of FGSM adversarial samples halves. At ``max_ratio`` adversarial training and the checks stop; from epoch
``epochs / 2`` on no adversarial samples are used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hessian_spectra.curvature import CurvatureOperator, PowerResult, power_iteration
from hessian_spectra.curvature.convergence import relative_residual
from hessian_spectra.curvature.operator import LossFn, eval_mode
from hessian_spectra.train.loop import epoch_generator
from hessian_spectra.train.strategies import EpochPlan, Strategy, TrainContext

# The source's settings (HessianFlow's README and FIGURES.md), used for keys a run's optimizer leaves out.
DEFAULTS = {"max_ratio": 128, "adv_ratio": 0.2, "eps": 0.005, "patience": 10, "eig_batch": 128}
POWER_ITERS, POWER_TOL = 10, 1e-2
EIG_BATCH_STREAM, EIG_START_STREAM = 2, 3


@dataclass
class ABSASchedule:
    """ABSA's decisions as a pure state machine: ``observe`` one dominant eigenvalue per epoch.

    A doubling (halved eigenvalue, or ``patience`` quiet epochs) makes the observed eigenvalue the new
    reference. The first observation only sets the reference. The ratio never exceeds ``max_ratio``; the step
    that reaches it scales the learning rate by the (possibly smaller) actual factor.
    """

    max_ratio: int
    adv_ratio: float
    patience: int
    epochs: int
    ratio: int = 1
    lr_factor: float = 1.0
    lambda_ref: float | None = None
    quiet: int = 0

    def __post_init__(self) -> None:
        if self.max_ratio < 1 or self.patience < 1 or not 0.0 <= self.adv_ratio <= 1.0:
            raise ValueError(
                f"absa needs max_ratio >= 1, patience >= 1 and 0 <= adv_ratio <= 1 "
                f"(got {self.max_ratio}, {self.patience}, {self.adv_ratio})"
            )
        if not self.checking:
            self.adv_ratio = 0.0

    @property
    def checking(self) -> bool:
        """Whether eigenvalue checks still run (the ratio is below its cap)."""
        return self.ratio < self.max_ratio

    def adversarial_ratio(self, epoch: int) -> float:
        """Fraction of FGSM samples used in (1-based) ``epoch``: none from ``epochs / 2`` on."""
        return 0.0 if epoch >= self.epochs / 2 else self.adv_ratio

    def observe(self, eigenvalue: float) -> bool:
        """Take the dominant eigenvalue measured after an epoch; returns whether the ratio doubled."""
        if not self.checking:
            raise RuntimeError("the batch-size ratio is at its cap: ABSA makes no more checks")
        self.quiet += 1
        halved = self.lambda_ref is not None and eigenvalue <= self.lambda_ref / 2
        if self.lambda_ref is None:
            self.lambda_ref = eigenvalue
        if not (halved or self.quiet >= self.patience):
            return False
        ratio = min(2 * self.ratio, self.max_ratio)
        self.lr_factor *= ratio / self.ratio
        self.ratio = ratio
        self.adv_ratio = self.adv_ratio / 2 if self.checking else 0.0
        self.lambda_ref = eigenvalue
        self.quiet = 0
        return True

    def state_dict(self) -> dict:
        """The schedule's state, for a checkpoint."""
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        """Restore the state ``state_dict`` returned."""
        for key, value in state.items():
            setattr(self, key, value)


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, loss_fn: LossFn = F.cross_entropy) -> Tensor:
    """FGSM samples ``x + eps * sign(grad_x loss)``, the gradient taken in eval mode so that BatchNorm's running
    statistics stay untouched; parameter gradients (being accumulated by the loop) are not touched either."""
    with eval_mode(model):
        x_in = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(model(x_in), y), x_in)
    return x.detach() + eps * grad.sign()


def adversarial_count(batch: int, ratio: float) -> int:
    """Samples of a batch replaced by FGSM ones (the source: at least one once the ratio exceeds 1 / batch)."""
    return max(int(batch * ratio), 1) if ratio > 1.0 / batch else 0


class ABSAStrategy(Strategy):
    """Momentum SGD whose effective batch, learning rate and adversarial fraction follow ``ABSASchedule``."""

    def __init__(self, ctx: TrainContext, model: nn.Module):
        super().__init__(ctx, model)
        options = {**DEFAULTS, **{k: v for k, v in ctx.run["optimizer"].items() if k != "name"}}
        self.eps = float(options["eps"])
        self.eig_batch = int(options["eig_batch"])
        self.schedule = ABSASchedule(
            max_ratio=int(options["max_ratio"]),
            adv_ratio=float(options["adv_ratio"]),
            patience=int(options["patience"]),
            epochs=int(ctx.run["epochs"]),
        )

    def epoch_plan(self, epoch: int) -> EpochPlan:
        """The base batch times the schedule's ratio, in micro-batches of the base batch, lr scaled by its factor."""
        base = self.ctx.run["batch_size"]
        ratio, lr_factor = self.schedule.ratio, self.schedule.lr_factor
        return EpochPlan(batch_size=base * ratio, micro_batch_size=base, lr_factor=lr_factor)

    def prepare_batch(self, x: Tensor, y: Tensor, epoch: int) -> tuple[Tensor, Tensor]:
        """Replace the batch's first samples by their FGSM versions, as many as the epoch's adversarial ratio asks."""
        count = adversarial_count(len(x), self.schedule.adversarial_ratio(epoch))
        if count == 0:
            return x, y
        adversarial = fgsm(self.model, x[:count], y[:count], self.eps, self.ctx.loss_fn)
        return torch.cat([adversarial, x[count:]]), y

    def dominant_eigenvalue(self, epoch: int) -> PowerResult:
        """Power iteration (source settings) on ``eig_batch`` training samples drawn by (seed, epoch)."""
        x, y = self.ctx.train_data
        seed = self.ctx.run["seed"]
        picked = torch.randperm(len(x), generator=epoch_generator(seed, epoch, EIG_BATCH_STREAM))[: self.eig_batch]
        picked = picked.to(x.device)
        op = CurvatureOperator(
            self.model, [(x[picked], y[picked])], loss_fn=self.ctx.loss_fn, mode=self.ctx.products,
            check_determinism=False,
        )
        return power_iteration(
            op, max_iter=POWER_ITERS, tol=POWER_TOL, seed=epoch_generator(seed, epoch, EIG_START_STREAM)
        )

    def on_epoch_end(self, epoch: int, metrics: dict) -> dict:
        """Check the dominant eigenvalue while the schedule still checks; the schedule's columns of the history row."""
        schedule = self.schedule
        row = {
            "ratio": schedule.ratio,
            "effective_batch_size": self.ctx.run["batch_size"] * schedule.ratio,
            "lr_factor": schedule.lr_factor,
            "adv_ratio": schedule.adversarial_ratio(epoch),
            "lambda": math.nan,
            "lambda_residual": math.nan,
            "lambda_relative_residual": math.nan,
            "lambda_stopped": "",
        }
        if schedule.checking:
            result = self.dominant_eigenvalue(epoch)
            schedule.observe(float(result.eigenvalue))
            row.update(
                {
                    "lambda": float(result.eigenvalue),
                    "lambda_residual": float(result.residual),
                    "lambda_relative_residual": relative_residual(result.eigenvalue, result.residual),
                    "lambda_stopped": bool(result.stopped),
                }
            )
        row["lambda_ref"] = math.nan if schedule.lambda_ref is None else schedule.lambda_ref
        return row

    def state_dict(self) -> dict:
        """The schedule's state, for a checkpoint."""
        return {"schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the state ``state_dict`` returned."""
        self.schedule.load_state_dict(state["schedule"])
