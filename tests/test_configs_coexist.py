"""Configs sharing one folder keep their own results: each config's study tables, figures and scorecard come from its
own planned runs only, and a named config's go under results/configs/<name>/, so running another config in between
changes none of the first one's files."""

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY, snakemake, write_config
from hessian_spectra import layout
from hessian_spectra.data.load import _load_digits


def snapshot(workdir) -> dict[str, str]:
    """SHA-256 of every table, figure and scorecard file of the unnamed config's results (per-run tables included)."""
    results = workdir / layout.RESULTS
    files = [p for folder in ("tables", "figures") for p in (results / folder).rglob("*") if p.is_file()]
    return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def other_config(workdir) -> dict:
    """The example's own model on another dataset (the digits as a .npz file of tensors, 8x8), over two seeds."""
    x_train, y_train = _load_digits(True)
    x_test, y_test = _load_digits(False)
    arrays = {"train_images": (x_train[:, 0].numpy() * 255).round().astype(np.uint8), "train_labels": y_train.numpy(),
              "test_images": (x_test[:, 0].numpy() * 255).round().astype(np.uint8), "test_labels": y_test.numpy()}
    np.savez(workdir / "digits.npz", **arrays)
    config = yaml.safe_load((REPO / "examples" / "own_model" / "config.yaml").read_text())
    config["name"] = "other"
    config["seeds"] = 2
    for study in config["studies"].values():
        study["defaults"].update(dataset="digits.npz", epochs=3, lr=0.2)  # past chance in 3 epochs on every seed
    config["studies"]["sharpest_directions"]["runs"] = [{"grid": {"lr": [0.1, 0.2]}}]
    return config


@pytest.mark.slow
def test_another_config_in_the_same_folder_changes_none_of_its_results(tiny_run, tmp_path):
    shared = tmp_path / "shared"
    shutil.copytree(tiny_run, shared, symlinks=True)  # a copy with its timestamps: the session's run stays as it is
    before = snapshot(shared)
    assert layout.findings() in before and any("/figures/" in path for path in before)
    (shared / "examples").symlink_to(REPO / "examples")  # the factory is imported from the working directory
    config = write_config(shared / "other.yaml", other_config(shared))
    other = snakemake(shared, "--cores", "2", configfile=config)
    assert other.returncode == 0, other.stderr[-3000:]

    after = snapshot(shared)
    changed = [path for path, digest in before.items() if after.get(path) != digest]
    assert not changed, f"the other config changed the tiny config's files: {changed}"
    again = snakemake(shared, "--cores", "2", configfile=TINY)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stderr[-3000:]
    assert snapshot(shared) == after

    # the other config's scorecard judged its own runs (two seeds of the own model, and their means) and none of
    # the tiny config's
    scorecard = pd.read_csv(shared / layout.findings("other"), sep="\t", dtype={"seed": str})
    assert set(scorecard["seed"].dropna()) == {"0", "1", "all"}
    text = (shared / layout.findings("other")).read_text()
    assert "small_cnn" in text and "lenet" not in text
    for study, figure in (("layerhessians", "match_distros_peak.png"), ("sharpest_directions", "lr_grid.png")):
        assert (shared / layout.figure(study, figure, "other")).stat().st_size > 0
