"""Atomic writes: all or nothing, with ordinary file permissions."""

import os
import stat

import pytest

from hessian_spectra.atomic import atomic_dir, atomic_write


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
