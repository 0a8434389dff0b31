"""TensorBoard event files of training curves and curvature tables, when the ``tensorboard`` extra is installed.

TensorBoard shows every folder of event files as one run, merging the files in it. Each folder (``write_scalars``)
or, for tables written one epoch per job, each file of a shared folder (``write_epoch_scalars``) belongs to one
job, which writes it whole and swaps it in: a rerun or a resumed run never leaves duplicated or half-written
events. Without TensorBoard nothing is written.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from hessian_spectra.atomic import atomic_dir
from hessian_spectra.layout import checkpoint_name

log = logging.getLogger(__name__)

Scalars = Mapping[str, list[tuple[int, float]]]  # tag -> [(step, value)]
_SPLIT_METRICS = {"loss": "loss", "acc": "accuracy"}


def _summary_writer():
    """TensorBoard's writer class, or None without the extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def _write_events(writer_class, folder: Path, scalars: Scalars) -> None:
    writer = writer_class(log_dir=str(folder))
    for tag, points in scalars.items():
        for step, value in points:
            writer.add_scalar(tag, value, global_step=step)
    writer.close()


def write_scalars(folder: str | Path, scalars: Scalars) -> bool:
    """Replace ``folder`` with one event file of ``scalars``; False (and nothing written) without TensorBoard."""
    writer_class = _summary_writer()
    if writer_class is None:
        return False
    atomic_dir(folder, lambda tmp: _write_events(writer_class, tmp, scalars))
    return True


def epoch_events(table: str | Path, epoch: int) -> Path | None:
    """The event file of a table named after its checkpoint (``epoch_NNNN.tsv``, one epoch of a run's per-epoch
    series, as ``layout.layer_spectrum``): named by the epoch, in ``tensorboard/`` beside the table, where every
    epoch of the series writes its own, so that TensorBoard shows the series as one run with epochs as steps. None
    for any other table (its events are a folder of their own, ``layout.table_events``)."""
    table = Path(table)
    name = checkpoint_name(epoch).removesuffix(".pt")
    return table.parent / "tensorboard" / f"events.out.tfevents.{name}" if table.stem == name else None


def write_epoch_scalars(path: str | Path, scalars: Scalars) -> bool:
    """Replace the event file ``path`` (``epoch_events``) with one of ``scalars``, leaving the other files of its
    folder alone; False (and nothing written) without TensorBoard."""
    writer_class = _summary_writer()
    if writer_class is None:
        return False
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # written outside the folder TensorBoard reads, then renamed into it
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent.parent) as tmp:
        _write_events(writer_class, Path(tmp), scalars)
        (written,) = Path(tmp).iterdir()
        os.replace(written, path)
    return True


def remove_events(folder: str | Path) -> None:
    """Remove a job's own folder of events (an earlier layout's), so that TensorBoard no longer shows it."""
    shutil.rmtree(folder, ignore_errors=True)


def _number(text: object) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def history_scalars(history: Iterable[Mapping[str, object]]) -> dict[str, list[tuple[int, float]]]:
    """Training's per-epoch record as tags: ``train/loss``, ``valid/accuracy``, ``test/loss``, ... and, for every
    other number it records (lr, batch size, steps, an optimizer's own), ``train/<column>``."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for row in history:
        for column, raw in row.items():
            value = _number(raw)
            if column == "epoch" or value is None:
                continue
            split, _, metric = column.partition("_")
            tag = f"{split}/{_SPLIT_METRICS[metric]}" if metric in _SPLIT_METRICS else f"train/{column}"
            scalars.setdefault(tag, []).append((int(row["epoch"]), value))
    return scalars


def table_scalars(table: str | Path) -> dict[str, list[tuple[int, float]]]:
    """A long curvature table (``epoch``, ``block``, ``quantity``, ``index``, ``value``) as tags
    ``<block>/lambda_<i>`` for eigenvalues and ``<block>/<quantity>`` otherwise (trace, frobenius_H, ...)."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    with open(table, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            value, epoch = _number(row["value"]), _number(row.get("epoch"))
            if value is None or epoch is None:
                continue
            index = int(row["index"])
            name = f"lambda_{index}" if row["quantity"] == "eigenvalue" else row["quantity"]
            if row["quantity"] != "eigenvalue" and index:
                name += f"_{index}"
            scalars.setdefault(f"{row['block']}/{name}", []).append((int(epoch), value))
    return scalars
