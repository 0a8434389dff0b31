"""The training loop: one run, a checkpoint per epoch written atomically, resume from the last complete one.

Every source of randomness after initialisation (batch order, augmentation, random batches) is drawn from a
generator seeded by (seed, epoch), so a run resumed from checkpoint e replays epochs e+1.. exactly: on CPU its
final weights are bitwise equal to an uninterrupted run's.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hessian_spectra.atomic import atomic_write
from hessian_spectra.checkpoint import (
    FORMAT_VERSION,
    build_from_spec,
    epoch_checkpoint,
    load_checkpoint,
    model_spec,
    save_atomic,
)
from hessian_spectra.data import dataset_info, load_splits, save_subset, select_subset, shift_flip
from hessian_spectra.runs import run_json
from hessian_spectra.train.schedules import LrSchedule
from hessian_spectra.train.strategies import Strategy, TrainContext, make_strategy

log = logging.getLogger(__name__)

EVAL_BATCH = 1000


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or weights."""


class RunPaths:
    """Files of one run directory."""

    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        self.checkpoints = self.root / "checkpoints"
        self.final = self.root / "final.pt"
        self.history = self.root / "history.tsv"
        self.subset = self.root / "hessian_subset.pt"
        self.run = self.root / "run.json"

    def checkpoint(self, epoch: int) -> Path:
        return epoch_checkpoint(self.root, epoch)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """CPU generator for one epoch's randomness (stream 0: order, 1: augmentation, 2+: strategies)."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 7 + stream) % (2**63))


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` in eval mode (its mode is restored)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.no_grad():
        for start in range(0, len(x), EVAL_BATCH):
            out = model(x[start : start + EVAL_BATCH])
            target = y[start : start + EVAL_BATCH]
            loss_sum += F.cross_entropy(out, target, reduction="sum").double()
            correct += (out.argmax(1) == target).sum()
    model.train(was_training)
    return loss_sum.item() / len(x), correct.item() / len(x)


def _load_data(run: dict, data_root: str | None, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    splits = ["train", "test"] + (["valid"] if run["valid_size"] > 0 else [])
    data = load_splits(
        run["dataset"],
        splits,
        root=data_root,
        image_size=run["image_size"],
        normalization=run["normalization"],
        valid_size=run["valid_size"],
        split_seed=run["seed"],
    )
    return {split: (x.to(device), y.to(device)) for split, (x, y) in data.items()}


def _hessian_subset(run: dict, data: dict, paths: RunPaths) -> tuple[torch.Tensor, torch.Tensor]:
    spec = run["hessian_subset"]
    x, y = data[spec["split"]]
    indices = select_subset(
        y.cpu(), per_class=spec["per_class"], size=spec["size"], selection=spec["selection"], seed=spec["seed"]
    )
    subset_x, subset_y = x[indices.to(x.device)], y[indices.to(y.device)]
    meta = {"run": run["key"], "dataset": run["dataset"], **spec}
    save_subset(paths.subset, subset_x.cpu(), subset_y.cpu(), indices, meta)
    return subset_x, subset_y


def _epoch_batches(run: dict, plan_batch: int, num_train: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Index tensors of one epoch: a shuffled pass, or ``steps_per_epoch`` fresh random batches."""
    steps = run["steps_per_epoch"]
    if steps is None:
        order = torch.randperm(num_train, generator=gen)
        return list(order.split(plan_batch))
    return [torch.randint(num_train, (plan_batch,), generator=gen) for _ in range(steps)]


def _latest_checkpoint(paths: RunPaths, run: dict) -> dict | None:
    """The newest readable checkpoint written for this exact run config; stale ones are removed."""
    candidates = sorted(paths.checkpoints.glob("epoch_*.pt"), reverse=True)
    for candidate in candidates:
        try:
            ckpt = load_checkpoint(candidate)
        except Exception as err:  # an unreadable file is skipped, never trusted
            log.warning("ignoring unreadable checkpoint %s (%s)", candidate, err)
            continue
        if run_json(ckpt["run"]) != run_json(run):
            log.warning("checkpoints in %s were written for another config; starting from scratch", paths.checkpoints)
            shutil.rmtree(paths.checkpoints)
            return None
        return ckpt
    return None


def _checkpoint(run, model, strategy, schedule, epoch, history, spec) -> dict:
    return {
        "format": FORMAT_VERSION,
        "model": spec,
        "state_dict": model.state_dict(),
        "epoch": epoch,
        "run": run,
        "trainer": {
            "optimizer": strategy.optimizer.state_dict(),
            "strategy": strategy.state_dict(),
            "schedule": schedule.state_dict(),
            "history": history,
        },
    }


def _check_finite(run: dict, epoch: int, metrics: dict, model: nn.Module) -> None:
    bad = [name for name in ("train_loss", "test_loss") if not math.isfinite(metrics[name])]
    if not bad and not all(torch.isfinite(p).all() for p in model.parameters()):
        bad = ["weights"]
    if bad:
        raise DivergenceError(
            f"run {run['key']} diverged in epoch {epoch}: non-finite {', '.join(bad)} "
            f"(train_loss={metrics['train_loss']}, lr={metrics['lr']}); no checkpoint written for this epoch"
        )


def _train_epoch(run, model, strategy, schedule, data, epoch) -> dict:
    plan = strategy.epoch_plan(epoch)
    lr = schedule.lr(epoch) * plan.lr_factor
    for group in strategy.optimizer.param_groups:
        group["lr"] = lr
    x_train, y_train = data["train"]
    order_gen, augment_gen = epoch_generator(run["seed"], epoch, 0), epoch_generator(run["seed"], epoch, 1)
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x_train.device)
    correct = torch.zeros((), dtype=torch.int64, device=x_train.device)
    seen = steps = 0
    for batch_idx in _epoch_batches(run, plan.batch_size, len(x_train), order_gen):
        batch_idx = batch_idx.to(x_train.device)
        strategy.optimizer.zero_grad(set_to_none=True)
        for micro_idx in batch_idx.split(plan.micro_batch_size):
            x, y = x_train[micro_idx], y_train[micro_idx]
            if run["augment"]:
                x = shift_flip(x, augment_gen)
            x, y = strategy.prepare_batch(x, y, epoch)
            out = model(x)
            loss = F.cross_entropy(out, y)
            (loss * (len(micro_idx) / len(batch_idx))).backward()
            loss_sum += loss.detach().double() * len(micro_idx)
            correct += (out.detach().argmax(1) == y).sum()
            seen += len(micro_idx)
        strategy.optimizer.step()
        steps += 1
    return {
        "lr": lr,
        "batch_size": plan.batch_size,
        "steps": steps,
        "train_loss": loss_sum.item() / seen,
        "train_acc": correct.item() / seen,
    }


def _write_history(path: Path, history: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in history for key in row))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t", restval="")
            writer.writeheader()
            writer.writerows(history)

    atomic_write(path, write)


def train_run(run: dict, out_dir: str | Path, data_root: str | None = None, device: str = "cpu") -> list[dict]:
    """Train one planned run into ``out_dir``; resume from its last complete checkpoint if there is one.

    Writes ``checkpoints/epoch_NNNN.pt`` every epoch (epoch 0 = initial weights), then ``final.pt``,
    ``history.tsv``, ``hessian_subset.pt`` and ``run.json``. Returns the history rows.
    """
    paths = RunPaths(out_dir)
    dev = torch.device(device)
    data = _load_data(run, data_root, dev)
    info = dataset_info(run["dataset"])
    spec = model_spec(run["model"], info.in_channels, run["image_size"], info.num_classes, run["model_options"])
    subset = _hessian_subset(run, data, paths)

    torch.manual_seed(run["seed"])
    model = build_from_spec(spec).to(dev)
    ctx = TrainContext(run=run, device=dev, loss_fn=F.cross_entropy, subset=subset, train_data=data["train"])
    strategy: Strategy = make_strategy(ctx, model)
    schedule = LrSchedule(run["schedule"], run["lr"])

    resumed = _latest_checkpoint(paths, run)
    if resumed is not None:
        model.load_state_dict(resumed["state_dict"])
        strategy.optimizer.load_state_dict(resumed["trainer"]["optimizer"])
        strategy.load_state_dict(resumed["trainer"]["strategy"])
        schedule.load_state_dict(resumed["trainer"]["schedule"])
        history = resumed["trainer"]["history"]
        start = resumed["epoch"]
        log.info("run %s: resuming from epoch %d (%s)", run["key"], start, paths.checkpoint(start))
    else:
        train_loss, train_acc = evaluate(model, *data["train"])
        test_loss, test_acc = evaluate(model, *data["test"])
        row = {"epoch": 0, "steps": 0, "lr": run["lr"], "batch_size": run["batch_size"], "train_loss": train_loss,
               "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
        if "valid" in data:
            row["valid_loss"], row["valid_acc"] = evaluate(model, *data["valid"])
        row["seconds"] = 0.0
        history = [row]
        save_atomic(_checkpoint(run, model, strategy, schedule, 0, history, spec), paths.checkpoint(0))
        start = 0
        log.info("run %s: initial weights saved; test_loss=%.4f test_acc=%.4f", run["key"], test_loss, test_acc)

    total_steps = history[-1]["steps"]
    for epoch in range(start + 1, run["epochs"] + 1):
        started = time.perf_counter()
        extras = strategy.on_epoch_start(epoch)
        metrics = _train_epoch(run, model, strategy, schedule, data, epoch)
        metrics["test_loss"], metrics["test_acc"] = evaluate(model, *data["test"])
        if "valid" in data:
            metrics["valid_loss"], metrics["valid_acc"] = evaluate(model, *data["valid"])
        _check_finite(run, epoch, metrics, model)
        schedule.observe(metrics)
        extras.update(strategy.on_epoch_end(epoch, metrics))
        total_steps += metrics.pop("steps")
        row = {"epoch": epoch, "steps": total_steps, **metrics, **extras}
        row["seconds"] = round(time.perf_counter() - started, 3)
        history.append(row)
        save_atomic(_checkpoint(run, model, strategy, schedule, epoch, history, spec), paths.checkpoint(epoch))
        log.info(
            "run %s: epoch %d/%d train_loss=%.4f train_acc=%.4f test_loss=%.4f test_acc=%.4f lr=%.4g (%.1f s)",
            run["key"], epoch, run["epochs"], row["train_loss"], row["train_acc"], row["test_loss"],
            row["test_acc"], row["lr"], row["seconds"],
        )

    atomic_write(paths.final, lambda tmp: shutil.copyfile(paths.checkpoint(run["epochs"]), tmp))
    _write_history(paths.history, history)
    atomic_write(paths.run, lambda tmp: Path(tmp).write_text(json.dumps(run, indent=2, sort_keys=True) + "\n"))
    return history
