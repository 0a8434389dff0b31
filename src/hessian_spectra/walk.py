"""Jobs that walk a run's checkpoints resume at their first unfinished epoch.

Each epoch's rows are saved, already spelled as table lines, beside the output (``layout.resume_dir``) under a
key of the job's settings and of that checkpoint's bytes; a rerun reuses every epoch whose key matches, so the
table it writes equals an uninterrupted run's byte for byte. The per-epoch files go once the table is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from hessian_spectra.atomic import atomic_write
from hessian_spectra.events import table_scalars, write_scalars
from hessian_spectra.layout import checkpoint_name, resume_dir, table_events
from hessian_spectra.tables import cell

log = logging.getLogger(__name__)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _spans(epochs: list[int]) -> str:
    return f"{epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else str(epochs[0])


def walk_checkpoints(
    checkpoints: Sequence[str | Path],
    out: str | Path,
    columns: Sequence[str],
    settings: dict,
    measure: Callable[[int, Path], list[dict]],
) -> None:
    """``measure(epoch, checkpoint)`` for every checkpoint (epoch = its position, 0 first), rows into one table
    ``out`` with ``columns``, written atomically; epochs finished by an earlier, killed run of the same settings on
    the same checkpoints are read back instead of measured again."""
    missing = [str(path) for path in checkpoints if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{missing[0]}: checkpoint missing ({len(missing)} of {len(checkpoints)}); run Snakemake, which makes it"
        )
    parts = resume_dir(out)
    base = json.dumps(settings, sort_keys=True, default=str)
    lines: list[str] = []
    reused: list[int] = []
    for epoch, path in enumerate(map(Path, checkpoints)):
        key = hashlib.sha256(f"{base}\n{file_digest(path)}".encode()).hexdigest()[:16]
        part = parts / f"{checkpoint_name(epoch).removesuffix('.pt')}-{key}.tsv"
        if part.is_file():
            lines += part.read_text().splitlines()
            reused.append(epoch)
            continue
        if reused and epoch == len(reused):
            log.info("resuming at epoch %d: epochs %s were finished by an earlier run", epoch, _spans(reused))
        measured = ["\t".join(cell(row[column]) for column in columns) for row in measure(epoch, path)]
        text = "".join(f"{line}\n" for line in measured)
        atomic_write(part, lambda tmp: Path(tmp).write_text(text))
        lines += measured
    if reused and len(reused) == len(checkpoints):
        log.info("every epoch was finished by an earlier run; writing the table")
    header = "\t".join(columns)
    atomic_write(out, lambda tmp: Path(tmp).write_text("".join(f"{line}\n" for line in [header, *lines])))
    write_scalars(table_events(out), table_scalars(out))
    shutil.rmtree(parts, ignore_errors=True)
