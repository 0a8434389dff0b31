"""Atomic file writes (torch-free): write to a temporary file beside the target, then rename onto it; a write that
fails for want of space says so in one line naming the target, which is left as it was."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class DiskFullError(RuntimeError):
    """A write that failed because its file system is full (or the user's quota spent); nothing was replaced."""


def _raise_if_disk_full(path: Path, err: BaseException) -> None:
    """``DiskFullError`` naming ``path`` when ``err`` (or what caused it: torch.save reports a failed write as a
    RuntimeError about file positions) is a full disk or quota."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"{path}: not written, no space left on the device that holds it ({os.strerror(cause.errno)}); "
                "what was there is unchanged: free some space and rerun"
            ) from None
        cause = cause.__cause__ or cause.__context__


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``, so readers never see a partial file.

    The file gets the permissions an ordinary ``open()`` would give it (0666 minus the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        _raise_if_disk_full(path, err)
        raise


def atomic_dir(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_dir)`` then swap the folder in for ``path``: readers see the old folder or the new one,
    never a mix, and nothing of an earlier run survives in it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = tmp.with_suffix(".old")
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException as err:
        _raise_if_disk_full(path, err)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
