"""What a process read: with ``HESSIAN_SPECTRA_AUDIT=DIR`` set, ``python -m hessian_spectra`` records every file it
opens (``sys.addaudithook``), its argv, working directory and standard output (a workflow job's log), the pinned
CPU settings and torch's threads, and writes them to ``DIR`` as one JSON file when it ends.

The workflow test runs every job so and checks each job's reads against the inputs Snakemake recorded for it.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import uuid
from pathlib import Path

from hessian_spectra.portable import PINNED, THREADS_VARIABLE

VARIABLE = "HESSIAN_SPECTRA_AUDIT"
ENVIRONMENT = (*PINNED, THREADS_VARIABLE, "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _standard_output() -> str | None:
    """The file the process's standard output goes to (a workflow job redirects it to its log), where known."""
    try:
        return os.readlink("/proc/self/fd/1")
    except OSError:
        return None


def _torch_settings() -> dict | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def install_from_environment() -> None:
    """Start recording when ``HESSIAN_SPECTRA_AUDIT`` names a directory; a no-op otherwise."""
    directory = os.environ.get(VARIABLE)
    if not directory:
        return
    record = {
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "stdout": _standard_output(),
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT},
        "opened": [],
    }
    opened = record["opened"]

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = os.path.abspath(os.fsdecode(args[0]))
        if args[1] is None and os.path.isdir(path):  # os.open of a folder (shutil.rmtree's), no file read
            return
        opened.append([path, args[1], args[2]])

    sys.addaudithook(hook)
    atexit.register(_write, Path(directory).absolute(), record)


def _write(directory: Path, record: dict) -> None:
    record["torch"] = _torch_settings()
    text = json.dumps(record)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{record['pid']}-{uuid.uuid4().hex}.json").write_text(text)


def is_read(mode: str | None, flags: int) -> bool:
    """Whether an ``open`` event (``mode`` of ``open()``, or None and the flags of ``os.open``) may read what the
    file held: not a write-only open, nor one that truncates or creates the file."""
    if mode is not None:
        return "r" in mode or "a+" in mode
    if flags & os.O_ACCMODE == os.O_WRONLY or flags & os.O_TRUNC:
        return False
    return not (flags & os.O_CREAT and flags & os.O_EXCL)


def load_records(directory: str | Path) -> list[dict]:
    """Every process record written to ``directory``."""
    return [json.loads(path.read_text()) for path in sorted(Path(directory).glob("*.json"))]
