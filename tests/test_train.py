"""Training: per-epoch checkpoints, history, bitwise-exact resume after SIGKILL from the store's intact prefix,
divergence, and a run directory of another configuration left untouched."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO
from hessian_spectra.checkpoint import load_checkpoint, model_from_checkpoint
from hessian_spectra.layout import RunFiles
from hessian_spectra.runs import load_yaml, plan_runs
from hessian_spectra.train.loop import DivergenceError, RunConflictError, train_run

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
    files = RunFiles(str(tmp_path))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [f"epoch_{e:04d}.pt" for e in range(4)]
    for epoch in range(4):
        ckpt = torch.load(files.checkpoint(epoch), weights_only=True)
        assert ckpt["epoch"] == epoch and ckpt["run"]["key"] == run["key"]
        assert os.path.samefile(files.checkpoint(epoch), files.stored(epoch)), "published as a hard link"
    initial = load_checkpoint(files.checkpoint(0))
    torch.manual_seed(run["seed"])
    from hessian_spectra.models import build_model
    fresh = build_model("lenet", 1, 32, 10)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in initial["state_dict"].items())
    history = open(files.history).read().splitlines()
    header = history[0].split("\t")
    assert header[:8] == ["epoch", "steps", "lr", "batch_size", "train_loss", "train_acc", "test_loss", "test_acc"]
    assert [row.split("\t")[0] for row in history[1:]] == ["0", "1", "2", "3"]
    assert sum(f"epoch {e}/3 train_loss=" in stderr for e in (1, 2, 3)) == 3
    final_acc = float(history[-1].split("\t")[header.index("test_acc")])
    assert final_acc > 0.5, "a LeNet trained 3 epochs on digits should beat chance clearly"
    stored = json.loads(open(files.run_json).read())
    assert stored["key"] == run["key"] and "subset" not in stored and "hessian_subset" not in stored


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    run = make_run(epochs=6)
    reference = tmp_path / "reference"
    uninterrupted = _cli(run, reference)
    assert uninterrupted.wait(timeout=300) == 0

    killed = tmp_path / "killed"
    proc = _cli(run, killed)
    third = Path(RunFiles(str(killed)).checkpoint(3))
    deadline = time.monotonic() + 300
    while not third.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not Path(RunFiles(str(killed)).checkpoint(6)).exists(), "the run was killed mid-way (before epoch 6)"
    # Snakemake removes a failed job's outputs: the store alone must carry the resume
    shutil.rmtree(killed / "checkpoints")

    resumed = _cli(run, killed)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert re.search(r"resuming after epoch [3-5]", stderr)
    for epoch in range(7):
        expected = _state(RunFiles(str(reference)).checkpoint(epoch))
        actual = _state(RunFiles(str(killed)).checkpoint(epoch))
        assert expected.keys() == actual.keys()
        for name in expected:
            assert torch.equal(expected[name], actual[name]), f"epoch {epoch}: {name} differs after resume"
    assert open(RunFiles(str(reference)).history).read().count("\n") == open(RunFiles(str(killed)).history).read().count("\n")


def test_an_unreadable_stored_epoch_is_retrained_from_the_prefix_before_it(tmp_path, caplog):
    run = make_run(epochs=3)
    train_run(run, tmp_path)
    files = RunFiles(str(tmp_path))
    originals = {epoch: _state(files.checkpoint(epoch)) for epoch in range(4)}
    with open(files.stored(2), "r+b") as handle:
        handle.truncate(100)
    with caplog.at_level("INFO"):
        train_run(run, tmp_path)
    assert "training again from epoch 2" in caplog.text and "resuming after epoch 1" in caplog.text
    for epoch, expected in originals.items():
        actual = _state(files.checkpoint(epoch))
        assert all(torch.equal(expected[name], actual[name]) for name in expected), epoch


def test_divergence_names_run_and_epoch_and_writes_no_nan_checkpoint(tmp_path):
    run = make_run(lr=1.0e6, epochs=3)
    with pytest.raises(DivergenceError, match=re.escape(f"run {run['key']} diverged in epoch 1: non-finite")):
        train_run(run, tmp_path)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["epoch_0000.pt"]
    assert not Path(RunFiles(str(tmp_path)).history).exists()
    proc = _cli(run, tmp_path / "cli")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "diverged in epoch 1" in stderr


def test_a_run_directory_of_another_config_is_never_removed(tmp_path):
    train_run(make_run(epochs=2), tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.pt")}
    with pytest.raises(RunConflictError) as raised:
        train_run(make_run(epochs=2, lr=0.02), tmp_path)
    message = str(raised.value)
    assert str(tmp_path) in message and "lr: stored 0.05, config 0.02" in message and "nothing was removed" in message
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.pt")} == before


def test_steps_per_epoch_draws_fresh_random_batches(tmp_path):
    run = make_run(model="mlp", image_size=8, epochs=2, steps_per_epoch=5, batch_size=8, momentum=0.0, augment=False)
    history = train_run(run, tmp_path)
    assert [row["steps"] for row in history] == [0, 5, 10]
