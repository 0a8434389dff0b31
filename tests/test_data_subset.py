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


def _planned(**overrides) -> dict:
    from conftest import REPO
    from hessian_spectra.runs import load_yaml, plan_runs

    schema = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
    entry = {"model": "mlp", "dataset": "digits", "image_size": 8, "batch_size": 32, "epochs": 1, "lr": 0.1,
             **overrides}
    study = {"runs": [entry], "hessian_subset": {"split": "train", "per_class": 10, "size": None, "seed": 5}}
    (run,) = plan_runs({"studies": {"sharpest_directions": study}}, schema).values()
    return run


@pytest.mark.parametrize("overrides", [{}, {"valid_size": 100, "seed": 3}], ids=["no-valid", "valid-seed3"])
def test_built_subset_is_the_runs_training_data_at_the_selected_indices(overrides):
    from hessian_spectra.data import load_splits
    from hessian_spectra.data.subset import build_subset

    run = _planned(**overrides)
    spec = run["subset"]
    assert {key: spec[key] for key in ("dataset", "image_size", "split", "per_class", "seed")} == {
        "dataset": "digits", "image_size": 8, "split": "train", "per_class": 10, "seed": 5}
    x, y, indices = build_subset(spec)
    # the split as training loads it (train.loop: the run's preprocessing, its seed splitting off validation)
    train_x, train_y = load_splits("digits", ["train"], image_size=8, normalization=run["normalization"],
                                   valid_size=run["valid_size"], split_seed=run["seed"])["train"]
    assert torch.equal(indices, select_subset(train_y, per_class=10, seed=5))
    assert torch.equal(x, train_x[indices]) and torch.equal(y, train_y[indices])
    assert torch.bincount(y, minlength=10).tolist() == [10] * 10


def test_subset_command_saves_the_spec_as_meta(tmp_path):
    import json

    from hessian_spectra import cli
    from hessian_spectra.data.subset import build_subset

    spec = _planned(valid_size=100, seed=3)["subset"]
    out = tmp_path / "subsets" / "s.pt"
    assert cli.main(["subset", "--spec", json.dumps(spec), "--out", str(out)]) == 0
    x, y, indices, meta = load_subset(out, return_indices=True)
    expected = build_subset(spec)
    assert meta == spec and all(torch.equal(a, b) for a, b in zip((x, y, indices), expected))


def test_an_unreadable_subset_file_is_one_line_naming_it(tmp_path):
    from hessian_spectra.checkpoint import UnreadableFileError

    path = tmp_path / "s.pt"
    save_subset(path, torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.int64), torch.arange(2), {})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(UnreadableFileError) as caught:
        load_subset(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(FileNotFoundError, match="s2.pt"):
        load_subset(tmp_path / "s2.pt")
