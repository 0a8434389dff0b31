"""The fixed, seeded Hessian subset: selection rules and the saved file."""

from __future__ import annotations

import pytest
import torch

from hessian_spectra.data.subset import load_subset, save_subset, select_subset


def _labels() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 10, (500,), generator=generator)


def test_per_class_selection():
    y = _labels()
    idx = select_subset(y, per_class=10, seed=0)
    assert idx.dtype == torch.int64 and torch.equal(idx, idx.sort().values)
    assert len(idx.unique()) == 100
    assert torch.equal(torch.bincount(y[idx], minlength=10), torch.full((10,), 10))
    assert torch.equal(idx, select_subset(y, per_class=10, seed=0))
    assert not torch.equal(idx, select_subset(y, per_class=10, seed=1))
    first = select_subset(y, per_class=3, selection="first")
    expected = torch.cat([torch.nonzero(y == c).flatten()[:3] for c in range(10)]).sort().values
    assert torch.equal(first, expected)


def test_size_selection():
    y = _labels()
    idx = select_subset(y, size=64, seed=2)
    assert len(idx) == 64 == len(idx.unique()) and torch.equal(idx, idx.sort().values)
    assert torch.equal(idx, select_subset(y, size=64, seed=2))
    assert not torch.equal(idx, select_subset(y, size=64, seed=3))
    assert torch.equal(select_subset(y, size=5, selection="first"), torch.arange(5))


def test_selection_errors():
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match="class 2 has only 1"):
        select_subset(y, per_class=2)
    with pytest.raises(ValueError, match="exactly one"):
        select_subset(y, per_class=1, size=2)
    with pytest.raises(ValueError, match="exactly one"):
        select_subset(y)
    with pytest.raises(ValueError, match="size"):
        select_subset(y, size=7)
    with pytest.raises(ValueError, match="selection"):
        select_subset(y, size=2, selection="last")


def test_save_load_round_trip(tmp_path):
    y = _labels()
    x = torch.randn(len(y), 3, 8, 8)
    idx = select_subset(y, per_class=2, seed=4)
    meta = {"dataset": "digits", "per_class": 2, "seed": 4, "normalization": "unit", "shape": [3, 8, 8]}
    path = tmp_path / "sub" / "hessian_subset.pt"
    save_subset(path, x[idx], y[idx], idx, meta)
    assert sorted(p.name for p in path.parent.iterdir()) == ["hessian_subset.pt"]  # no temporary file left
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"x", "y", "indices", "meta"}
    x2, y2, meta2 = load_subset(path)
    assert torch.equal(x2, x[idx]) and torch.equal(y2, y[idx]) and y2.dtype == torch.int64 and meta2 == meta
    assert torch.equal(load_subset(path, return_indices=True)[2], idx)


def test_save_rejects_bad_input(tmp_path):
    x, y = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="meta"):
        save_subset(tmp_path / "a.pt", x, y, torch.arange(2), {"fn": print})
    with pytest.raises(ValueError, match="length"):
        save_subset(tmp_path / "a.pt", x, y, torch.arange(3), {})
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a Hessian subset"):
        load_subset(tmp_path / "other.pt")
