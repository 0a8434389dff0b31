"""Give each GPU job its own device on a multi-GPU machine.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once but assigns no device ids. Each job
therefore claims a free slot among the machine's GPUs with a non-blocking ``flock`` on one of N lock files,
held for the life of the process, and sets ``CUDA_VISIBLE_DEVICES`` before torch initialises CUDA. Under
SLURM the scheduler has already set ``CUDA_VISIBLE_DEVICES`` for the job's allocation, and it is kept.
Must run before ``import torch``; torch-free by design.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SLURM_MARKERS = ("SLURM_JOB_ID", "SLURM_JOBID")


@dataclass
class GpuSlot:
    """A claimed device: its index among the slots, the device id exported, and the open lock (if any)."""

    slot: int | None
    device: str
    lock_file: object | None = None

    def release(self) -> None:
        """Drop the lock (also happens automatically when the process exits)."""
        if self.lock_file is not None:
            self.lock_file.close()
            self.lock_file = None


def default_lock_dir() -> Path:
    """Per-user lock directory shared by every job on this machine."""
    return Path(tempfile.gettempdir()) / f"hessian-spectra-gpu-slots-{os.getuid()}"


def device_pool(num_gpus: int) -> list[str]:
    """Device ids jobs may claim: the ids in a user-set ``CUDA_VISIBLE_DEVICES``, else ``0..num_gpus-1``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible:
        return [device.strip() for device in visible.split(",") if device.strip()]
    return [str(index) for index in range(num_gpus)]


def _try_lock(path: Path):
    handle = open(path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def claim_gpu_slot(
    num_gpus: int, lock_dir: str | Path | None = None, poll_seconds: float = 1.0, timeout: float | None = None
) -> GpuSlot:
    """Claim a free GPU slot and export ``CUDA_VISIBLE_DEVICES``; keep SLURM's assignment when present.

    Waits (polling) while every slot is held, e.g. when two Snakemake instances share a machine;
    ``timeout`` (seconds) turns that wait into a ``TimeoutError``.
    """
    if any(marker in os.environ for marker in SLURM_MARKERS) and os.environ.get("CUDA_VISIBLE_DEVICES"):
        device = os.environ["CUDA_VISIBLE_DEVICES"]
        log.info("GPU assigned by SLURM: CUDA_VISIBLE_DEVICES=%s", device)
        return GpuSlot(slot=None, device=device)
    pool = device_pool(num_gpus)
    lock_dir = Path(lock_dir) if lock_dir else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    waiting_logged = False
    while True:
        for slot, device in enumerate(pool):
            handle = _try_lock(lock_dir / f"gpu{device}.lock")
            if handle is not None:
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                os.environ["CUDA_VISIBLE_DEVICES"] = device
                log.info("claimed GPU slot %d: CUDA_VISIBLE_DEVICES=%s", slot, device)
                return GpuSlot(slot=slot, device=device, lock_file=handle)
        if timeout is not None and time.monotonic() - started > timeout:
            raise TimeoutError(f"no free GPU slot among devices {pool} (locks in {lock_dir}) after {timeout:.0f} s")
        if not waiting_logged:
            log.warning("all %d GPU slots busy (locks in %s); waiting for one to free up", len(pool), lock_dir)
            waiting_logged = True
        time.sleep(poll_seconds)
