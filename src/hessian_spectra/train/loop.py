"""The training loop: one run, a checkpoint per epoch written atomically, resume from an intact prefix.

Every source of randomness after initialisation (batch order, augmentation, random batches) is drawn from a
generator seeded by (seed, epoch), so a run resumed from checkpoint e replays epochs e+1.. exactly: on CPU its
weights are bitwise equal to an uninterrupted run's.

Checkpoints are saved into the run's store (``RunFiles.stored``) and published as hard links at their workflow
paths (``RunFiles.checkpoint``). Snakemake removes a job's outputs before it runs and after it fails; the store
keeps them, so training resumes from the store's longest intact prefix: epoch k is trusted only if epochs 0..k all
load and were written for this exact run. A store written for another configuration is never removed: training
stops and names both.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hessian_spectra.atomic import atomic_write
from hessian_spectra.checkpoint import (
    FORMAT_VERSION,
    UnreadableFileError,
    build_from_spec,
    load_checkpoint,
    model_spec,
    save_atomic,
)
from hessian_spectra.data import dataset_info, load_splits, load_subset, shift_flip
from hessian_spectra.events import history_scalars, write_scalars
from hessian_spectra.layout import RunFiles
from hessian_spectra.runs import run_json, training_config
from hessian_spectra.train.schedules import LrSchedule
from hessian_spectra.train.strategies import Strategy, TrainContext, make_strategy

log = logging.getLogger(__name__)

EVAL_BATCH = 1000


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or weights."""


class RunConflictError(RuntimeError):
    """A run directory holds checkpoints of another training configuration."""


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


def _epoch_batches(run: dict, plan_batch: int, num_train: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Index tensors of one epoch: a shuffled pass, or ``steps_per_epoch`` fresh random batches."""
    steps = run["steps_per_epoch"]
    if steps is None:
        order = torch.randperm(num_train, generator=gen)
        return list(order.split(plan_batch))
    return [torch.randint(num_train, (plan_batch,), generator=gen) for _ in range(steps)]


def _differences(stored: dict, wanted: dict) -> str:
    keys = sorted(set(stored) | set(wanted))
    return "; ".join(
        f"{key}: stored {stored.get(key)!r}, config {wanted.get(key)!r}"
        for key in keys
        if stored.get(key) != wanted.get(key)
    )


def _publish(files: RunFiles, epoch: int) -> None:
    """Link the stored checkpoint of ``epoch`` to its workflow path (replacing whatever is there)."""
    stored, published = Path(files.stored(epoch)), Path(files.checkpoint(epoch))
    published.parent.mkdir(parents=True, exist_ok=True)
    tmp = published.with_name(f".{published.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(stored, tmp)
    except OSError:  # a file system without hard links: a copy
        tmp.write_bytes(stored.read_bytes())
    os.replace(tmp, published)


def _resume_point(files: RunFiles, run: dict) -> dict | None:
    """The last checkpoint of the store's longest intact prefix (None: start from scratch); later stored epochs
    are untrusted and removed. Raises ``RunConflictError`` for a store written for another configuration."""
    last = None
    for epoch in range(run["epochs"] + 1):
        path = Path(files.stored(epoch))
        if not path.is_file():
            break
        try:
            ckpt = load_checkpoint(path)
        except UnreadableFileError as err:
            log.warning("run %s: %s; training again from epoch %d", run["key"], str(err).split(";")[0], epoch)
            break
        if run_json(ckpt["run"]) != run_json(run):
            raise RunConflictError(
                f"{files.root} holds checkpoints of another training configuration "
                f"({_differences(ckpt['run'], run)}); nothing was removed: move or delete that directory, "
                "or give this run its own `name`"
            )
        if ckpt["epoch"] != epoch:
            log.warning("run %s: %s holds epoch %s; training again from epoch %d", run["key"], path, ckpt["epoch"], epoch)
            break
        last = ckpt
    trusted = -1 if last is None else last["epoch"]
    for stale in Path(files.stored(0)).parent.glob("epoch_*.pt"):
        if int(stale.stem.split("_")[1]) > trusted:
            stale.unlink()
    return last


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


def train_run(
    run: dict,
    out_dir: str | Path,
    data_root: str | None = None,
    device: str = "cpu",
    subset_path: str | Path | None = None,
    products: str = "cached",
) -> list[dict]:
    """Train one planned run into ``out_dir``; resume from the longest intact prefix of its stored checkpoints.

    Writes ``checkpoints/epoch_NNNN.pt`` every epoch (epoch 0 = initial weights), then ``history.tsv`` and
    ``run.json``. ``subset_path`` is the Hessian subset, for optimizers that train on it (NSGD); ``products`` the
    product kind of the curvature operators a strategy builds (NSGD, ABSA). Returns the history rows.
    """
    run = training_config(run)
    files = RunFiles(str(out_dir))
    dev = torch.device(device)
    data = _load_data(run, data_root, dev)
    info = dataset_info(run["dataset"])
    spec = model_spec(run["model"], info.in_channels, run["image_size"], info.num_classes, run["model_options"])
    subset = None
    if subset_path is not None:
        x, y, _meta = load_subset(subset_path)
        subset = (x.to(dev), y.to(dev))

    torch.manual_seed(run["seed"])
    model = build_from_spec(spec).to(dev)
    ctx = TrainContext(
        run=run, device=dev, loss_fn=F.cross_entropy, subset=subset, train_data=data["train"], products=products
    )
    strategy: Strategy = make_strategy(ctx, model)
    schedule = LrSchedule(run["schedule"], run["lr"])

    resumed = _resume_point(files, run)
    if resumed is not None:
        model.load_state_dict(resumed["state_dict"])
        strategy.optimizer.load_state_dict(resumed["trainer"]["optimizer"])
        strategy.load_state_dict(resumed["trainer"]["strategy"])
        schedule.load_state_dict(resumed["trainer"]["schedule"])
        history = resumed["trainer"]["history"]
        start = resumed["epoch"]
        for epoch in range(start + 1):
            _publish(files, epoch)
        write_scalars(files.events, history_scalars(history))
        log.info("run %s: resuming after epoch %d (%s)", run["key"], start, files.stored(start))
    else:
        train_loss, train_acc = evaluate(model, *data["train"])
        test_loss, test_acc = evaluate(model, *data["test"])
        row = {"epoch": 0, "steps": 0, "lr": run["lr"], "batch_size": run["batch_size"], "train_loss": train_loss,
               "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
        if "valid" in data:
            row["valid_loss"], row["valid_acc"] = evaluate(model, *data["valid"])
        row["seconds"] = 0.0
        history = [row]
        save_atomic(_checkpoint(run, model, strategy, schedule, 0, history, spec), files.stored(0))
        _publish(files, 0)
        write_scalars(files.events, history_scalars(history))
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
        save_atomic(_checkpoint(run, model, strategy, schedule, epoch, history, spec), files.stored(epoch))
        _publish(files, epoch)
        write_scalars(files.events, history_scalars(history))
        log.info(
            "run %s: epoch %d/%d train_loss=%.4f train_acc=%.4f test_loss=%.4f test_acc=%.4f lr=%.4g (%.1f s)",
            run["key"], epoch, run["epochs"], row["train_loss"], row["train_acc"], row["test_loss"],
            row["test_acc"], row["lr"], row["seconds"],
        )

    _write_history(Path(files.history), history)
    atomic_write(files.run_json, lambda tmp: Path(tmp).write_text(json.dumps(run, indent=2, sort_keys=True) + "\n"))
    return history
