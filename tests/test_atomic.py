"""Atomic writes: all or nothing, with ordinary file permissions."""

import errno
import os
import stat
import subprocess
import sys

import pytest

from hessian_spectra.atomic import DiskFullError, atomic_dir, atomic_write


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.tsv"

    def fail(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", lambda tmp: open(tmp, "w").write("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert (tmp_path / "a.txt").read_text() == "x"


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "events"
    atomic_dir(target, lambda tmp: (tmp / "a").write_text("1"))
    atomic_dir(target, lambda tmp: (tmp / "b").write_text("2"))
    assert sorted(p.name for p in target.iterdir()) == ["b"], "nothing of the earlier folder survives"

    def fail(tmp):
        (tmp / "c").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_dir(target, fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"] and (target / "b").read_text() == "2"


def _no_space(tmp):
    with open(tmp, "wb") as handle:
        handle.write(b"half")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_named_and_loses_nothing(tmp_path):
    target = tmp_path / "out.tsv"
    target.write_text("before")
    with pytest.raises(DiskFullError) as caught:
        atomic_write(target, _no_space)
    assert str(caught.value) == (f"{target}: not written, no space left on the device that holds it (No space left "
                                 "on device); what was there is unchanged: free some space and rerun")
    assert target.read_text() == "before" and [p.name for p in tmp_path.iterdir()] == ["out.tsv"]
    with pytest.raises(DiskFullError, match=f"^{tmp_path / 'events'}: not written"):
        atomic_dir(tmp_path / "events", lambda tmp: _no_space(tmp / "a"))
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a real 32 KiB file system (a tmpfs: mounting one needs root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount)]).returncode:
        pytest.skip("mounting a small tmpfs needs root (test_a_full_disk_is_named_and_loses_nothing simulates one)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_checkpoint_on_a_full_disk_is_one_line_naming_it(small_disk):
    """torch.save reports a failed write as `unexpected pos ...`; the save says what happened and leaves nothing."""
    import torch

    from hessian_spectra.checkpoint import save_atomic

    target = small_disk / "epoch_0001.pt"
    with pytest.raises(DiskFullError, match=f"^{target}: not written, no space left on the device"):
        save_atomic({"weights": torch.zeros(100_000)}, target)
    assert list(small_disk.iterdir()) == []


def test_training_on_a_full_disk_stops_with_one_line(small_disk):
    from conftest import REPO
    from hessian_spectra.runs import load_yaml, plan_runs, run_json

    study = {"defaults": {"model": "lenet", "dataset": "digits", "image_size": 32, "epochs": 1, "batch_size": 64,
                          "lr": 0.05}, "runs": [{}], "hessian_subset": {"per_class": 1}}
    schema = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
    (run,) = plan_runs({"studies": {"layerhessians": study}}, schema).values()
    out = small_disk / "run"
    command = [sys.executable, "-m", "hessian_spectra", "train", "--run", run_json(run), "--out-dir", str(out),
               "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    (error,) = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert error.endswith(f"DiskFullError: {out}/.checkpoint-store/epoch_0000.pt: not written, no space left on the "
                          "device that holds it (No space left on device); what was there is unchanged: free some "
                          "space and rerun")
    assert "Traceback" not in result.stderr
    assert not [p for p in small_disk.rglob("*") if p.is_file()], "nothing half-written stays"
