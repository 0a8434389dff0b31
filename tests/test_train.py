"""Training: per-epoch checkpoints, history, bitwise-exact resume after SIGKILL, divergence, stale checkpoints."""

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from hessian_spectra.checkpoint import load_checkpoint, model_from_checkpoint, trained_run
from hessian_spectra.runs import load_yaml, plan_runs
from hessian_spectra.train.loop import DivergenceError, RunPaths, train_run
from conftest import REPO

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def make_run(**overrides) -> dict:
    """A small planned run on digits (LeNet, 1 thread of CPU)."""
    entry = {"model": "lenet", "dataset": "digits", "batch_size": 32, "epochs": 3, "lr": 0.05, "augment": True}
    entry.update(overrides)
    study = {"runs": [entry], "hessian_subset": {"split": "train", "per_class": 10, "size": None,
                                                  "selection": "random", "seed": 0}}
    (run,) = plan_runs({"studies": {"layerhessians": study}}, SCHEMA).values()
    return run


def _cli(run: dict, out_dir, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "hessian_spectra", "train", "--run", json.dumps(run), "--out-dir", str(out_dir),
               "--threads", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _state(path):
    return model_from_checkpoint(path).state_dict()


def test_checkpoints_history_and_log(tmp_path):
    run = make_run()
    proc = _cli(run, tmp_path)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    paths = RunPaths(tmp_path)
    assert sorted(p.name for p in paths.checkpoints.iterdir()) == [f"epoch_{e:04d}.pt" for e in range(4)]
    for epoch in range(4):
        ckpt = torch.load(paths.checkpoint(epoch), weights_only=True)
        assert ckpt["epoch"] == epoch and ckpt["run"]["key"] == run["key"]
    initial = load_checkpoint(paths.checkpoint(0))
    torch.manual_seed(run["seed"])
    from hessian_spectra.models import build_model
    fresh = build_model("lenet", 1, 32, 10)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in initial["state_dict"].items())
    history = paths.history.read_text().splitlines()
    header = history[0].split("\t")
    assert header[:8] == ["epoch", "steps", "lr", "batch_size", "train_loss", "train_acc", "test_loss", "test_acc"]
    assert [row.split("\t")[0] for row in history[1:]] == ["0", "1", "2", "3"]
    assert sum(f"epoch {e}/3 train_loss=" in stderr for e in (1, 2, 3)) == 3
    final_acc = float(history[-1].split("\t")[header.index("test_acc")])
    assert final_acc > 0.5, "a LeNet trained 3 epochs on digits should beat chance clearly"
    assert json.loads(paths.run.read_text())["key"] == run["key"]
    subset = torch.load(paths.subset, weights_only=True)
    assert torch.bincount(subset["y"], minlength=10).tolist() == [10] * 10


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    run = make_run(epochs=6)
    reference = tmp_path / "reference"
    uninterrupted = _cli(run, reference)
    assert uninterrupted.wait(timeout=300) == 0

    killed = tmp_path / "killed"
    proc = _cli(run, killed)
    third = RunPaths(killed).checkpoint(3)
    deadline = time.monotonic() + 300
    while not third.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not RunPaths(killed).final.exists(), "the run was killed mid-way (before epoch 6)"
    assert not RunPaths(killed).checkpoint(6).exists()

    resumed = _cli(run, killed)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert "resuming from epoch" in stderr
    expected, actual = _state(RunPaths(reference).final), _state(RunPaths(killed).final)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after resume"
    assert RunPaths(reference).history.read_text().count("\n") == RunPaths(killed).history.read_text().count("\n")


def test_divergence_names_run_and_epoch_and_writes_no_nan_checkpoint(tmp_path):
    run = make_run(lr=1.0e6, epochs=3)
    with pytest.raises(DivergenceError, match=re.escape(f"run {run['key']} diverged in epoch 1: non-finite")):
        train_run(run, tmp_path)
    paths = RunPaths(tmp_path)
    assert [p.name for p in paths.checkpoints.iterdir()] == ["epoch_0000.pt"]
    assert not paths.final.exists() and not paths.history.exists()
    proc = _cli(run, tmp_path / "cli")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "diverged in epoch 1" in stderr


def test_changed_config_restarts_instead_of_resuming(tmp_path):
    train_run(make_run(epochs=2), tmp_path)
    history = train_run(make_run(epochs=2, lr=0.02), tmp_path)
    assert history[1]["lr"] == 0.02
    assert load_checkpoint(RunPaths(tmp_path).final)["run"]["lr"] == 0.02


def test_steps_per_epoch_draws_fresh_random_batches(tmp_path):
    run = make_run(model="mlp", image_size=8, epochs=2, steps_per_epoch=5, batch_size=8, momentum=0.0, augment=False)
    history = train_run(run, tmp_path)
    assert [row["steps"] for row in history] == [0, 5, 10]


def test_trained_run_lists_every_epoch_and_names_the_first_missing_checkpoint(tmp_path):
    run = make_run(epochs=2)
    paths = RunPaths(tmp_path)
    paths.checkpoints.mkdir()
    paths.run.write_text(json.dumps(run))
    for epoch in (0, 1):
        paths.checkpoint(epoch).touch()
    with pytest.raises(FileNotFoundError, match=r"1 checkpoint\(s\) missing, first .*epoch_0002\.pt"):
        trained_run(tmp_path)
    paths.checkpoint(2).touch()
    config, found = trained_run(tmp_path)
    assert config == run and found == [paths.checkpoint(epoch) for epoch in range(3)]
