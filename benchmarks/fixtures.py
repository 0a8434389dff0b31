"""The checkpoints and data every section shares: models trained on digits (cached), and fixed Hessian batches."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from benchmarks.sizes import IMAGE_SIZE, TRAIN_BATCH, ModelChoice
from hessian_spectra.checkpoint import model_from_checkpoint
from hessian_spectra.curvature import make_batches
from hessian_spectra.data import load_split, shift_flip
from hessian_spectra.layout import RunFiles
from hessian_spectra.runs import load_yaml, plan_runs, run_json

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def planned_run(choice: ModelChoice) -> dict:
    """The training run of ``choice`` as the workflow plans it (a layerhessians-style SGD run on digits)."""
    entry = {
        "model": choice.name,
        "model_options": {"width": choice.width},
        "dataset": "digits",
        "image_size": IMAGE_SIZE,
        "batch_size": TRAIN_BATCH,
        "epochs": choice.epochs,
        "lr": 0.01,
        "momentum": 0.9,
        "seed": 0,
        "steps_per_epoch": choice.steps_per_epoch,
    }
    (run,) = plan_runs({"studies": {"layerhessians": {"runs": [entry]}}}, load_yaml(SCHEMA)).values()
    return run


def trained_model(choice: ModelChoice, cache_dir: Path, device: torch.device) -> nn.Module:
    """The trained model of ``choice`` in eval mode on ``device``; trained on the CPU once, then read from the cache."""
    from hessian_spectra.train.loop import train_run

    run = planned_run(choice)
    digest = hashlib.sha256(run_json(run).encode()).hexdigest()[:12]
    out = cache_dir / "checkpoints" / f"{choice.name}-{digest}"
    final = Path(RunFiles(str(out)).checkpoint(choice.epochs))
    if not final.exists():
        log.info("training %s (width %g, %d epochs) into %s", choice.name, choice.width, choice.epochs, out)
        train_run(run, out, device="cpu")
    return model_from_checkpoint(final, map_location=device).eval()


def num_params(model: nn.Module) -> int:
    """The number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def digits_samples(n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` digits training images at 32x32; beyond the 1,437 real ones, seeded shifted copies."""
    x, y = load_split("digits", "train", image_size=IMAGE_SIZE)
    xs, ys, have = [x[:n]], [y[:n]], min(n, len(x))
    generator = torch.Generator().manual_seed(0)
    while have < n:
        take = min(n - have, len(x))
        xs.append(shift_flip(x[:take], generator, max_shift=2, flip=False))
        ys.append(y[:take])
        have += take
    return torch.cat(xs), torch.cat(ys)


def hessian_batches(n: int, batch_size: int, device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """``n`` samples in consecutive batches on ``device``: the data every method of a comparison sees."""
    x, y = digits_samples(n)
    return make_batches(x.to(device), y.to(device), batch_size)
