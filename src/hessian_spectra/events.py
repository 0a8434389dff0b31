"""TensorBoard event files of training curves and curvature tables, when the ``tensorboard`` extra is installed.

Each folder of events belongs to one job, which writes it whole after every update and swaps it in
(``atomic_dir``): a rerun or a resumed run never leaves duplicated or half-written events. Without TensorBoard
nothing is written.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from hessian_spectra.atomic import atomic_dir

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


def write_scalars(folder: str | Path, scalars: Scalars) -> bool:
    """Replace ``folder`` with one event file of ``scalars``; False (and nothing written) without TensorBoard."""
    writer_class = _summary_writer()
    if writer_class is None:
        return False

    def write(tmp: Path) -> None:
        writer = writer_class(log_dir=str(tmp))
        for tag, points in scalars.items():
            for step, value in points:
                writer.add_scalar(tag, value, global_step=step)
        writer.close()

    atomic_dir(folder, write)
    return True


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
