"""NSGD: gamma = 1 is SGD bitwise, gamma = 0 removes the step along P, the top-direction step is gamma times SGD's
on a quadratic with known Hessian, and a killed NSGD run resumes bitwise."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import REPO, final_checkpoint, make_subset
from hessian_spectra.checkpoint import load_checkpoint, model_from_checkpoint
from hessian_spectra.layout import RunFiles
from hessian_spectra.runs import load_yaml, plan_runs
from hessian_spectra.train.loop import train_run
from hessian_spectra.train.nsgd import NSGD, NSGDStrategy
from hessian_spectra.train.strategies import TrainContext

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def make_run(**overrides) -> dict:
    """A small planned run of the study on digits."""
    entry = {"model": "mlp", "model_options": {"width": 0.5}, "dataset": "digits", "image_size": 8,
             "batch_size": 32, "epochs": 2, "lr": 0.05, "momentum": 0.9, "l2": 1e-3,
             "optimizer": {"name": "nsgd", "gamma": 0.1, "kk": 2}}
    entry.update(overrides)
    study = {"runs": [entry], "hessian_subset": {"size": 64}}
    (run,) = plan_runs({"studies": {"sharpest_directions": study}}, SCHEMA).values()
    return run


def _mlp(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)


def _orthonormal(n: int, k: int, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))[0].to(dtype)


def _grad_step(model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    gen = torch.Generator().manual_seed(100 + step)
    dtype = next(model.parameters()).dtype
    x, y = torch.randn(16, 6, generator=gen, dtype=dtype), torch.randint(3, (16,), generator=gen)
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_gamma_one_is_sgd_bitwise(momentum):
    sgd_model, nsgd_model = _mlp(), _mlp()
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.1, momentum=momentum, weight_decay=1e-3)
    nsgd = NSGD(nsgd_model.parameters(), lr=0.1, momentum=momentum, weight_decay=1e-3, gamma=1.0)
    params = list(nsgd_model.parameters())
    nsgd.set_directions(_orthonormal(sum(p.numel() for p in params), 3), params)
    for step in range(5):
        _grad_step(sgd_model, sgd, step)
        _grad_step(nsgd_model, nsgd, step)
    assert torch.equal(_flat(sgd_model), _flat(nsgd_model))
    if momentum:
        for p, q in zip(sgd_model.parameters(), nsgd_model.parameters()):
            assert torch.equal(sgd.state[p]["momentum_buffer"], nsgd.state[q]["momentum_buffer"])


def test_gamma_one_training_run_equals_sgd_run_bitwise(tmp_path):
    nsgd_run = make_run(optimizer={"name": "nsgd", "gamma": 1.0, "kk": 2})
    subset = make_subset(nsgd_run, tmp_path / "subset.pt")
    sgd = train_run(make_run(optimizer={"name": "sgd"}), tmp_path / "sgd")
    nsgd = train_run(nsgd_run, tmp_path / "nsgd", subset_path=subset)
    expected, actual = _state(tmp_path / "sgd"), _state(tmp_path / "nsgd")
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert [row["train_loss"] for row in sgd] == [row["train_loss"] for row in nsgd]
    assert all(row["nsgd_lambda1"] >= row["nsgd_lambda2"] > 0 and row["nsgd_converged1"] for row in nsgd[1:])


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_gamma_zero_update_has_no_component_along_p(momentum):
    model = _mlp(torch.float64)
    params = list(model.parameters())
    P = _orthonormal(sum(p.numel() for p in params), 3)
    optimizer = NSGD(params, lr=0.1, momentum=momentum, weight_decay=1e-3, gamma=0.0)
    optimizer.set_directions(P, params)
    buffers = None
    for step in range(3):
        before = _flat(model)
        _grad_step(model, optimizer, step)
        update = _flat(model) - before
        assert update.norm() > 1e-3
        assert (P.T @ update).abs().max() <= 1e-13 * update.norm()
        if momentum:
            direction = torch.cat([p.grad.reshape(-1) for p in params]) + 1e-3 * before
            buffer = torch.cat([optimizer.state[p]["momentum_buffer"].reshape(-1) for p in params])
            expected = direction if buffers is None else momentum * buffers + direction
            torch.testing.assert_close(buffer, expected, rtol=1e-12, atol=1e-15)
            torch.testing.assert_close(update, -0.1 * (buffer - P @ (P.T @ buffer)), rtol=1e-10, atol=1e-15)
            buffers = buffer


def _quadratic_context(gamma: float, x: torch.Tensor, y: torch.Tensor, l2: float) -> TrainContext:
    run = {"key": "quadratic", "seed": 0, "lr": 0.1, "momentum": 0.0, "l2": l2,
           "optimizer": {"name": "nsgd", "gamma": gamma, "kk": 2}}
    return TrainContext(run=run, device=torch.device("cpu"), loss_fn=_squared_loss, subset=(x, y), train_data=(x, y))


def _squared_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out.squeeze(-1) - target) ** 2).mean()


@pytest.mark.parametrize("gamma", [0.0, 0.1, 5.0])
def test_step_along_top_eigenvector_is_gamma_times_sgd_on_a_quadratic(gamma):
    gen = torch.Generator().manual_seed(3)
    d, n, l2 = 8, 40, 0.01
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.linspace(0.3, 3.0, d, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    hessian = (x.T @ x / n + l2 * torch.eye(d, dtype=torch.float64)).numpy()
    values, vectors = np.linalg.eigh(hessian)
    top = torch.from_numpy(vectors[:, ::-1].copy())

    def model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Linear(d, 1, bias=False).to(torch.float64)

    nsgd_model, sgd_model = model(), model()
    strategy = NSGDStrategy(_quadratic_context(gamma, x, y, l2), nsgd_model)
    row = strategy.on_epoch_start(1)
    np.testing.assert_allclose([row["nsgd_lambda1"], row["nsgd_lambda2"]], values[::-1][:2], rtol=1e-10)
    assert row["nsgd_converged1"] and row["nsgd_converged2"]
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.1, weight_decay=l2)
    steps = {}
    for name, net, optimizer in (("nsgd", nsgd_model, strategy.optimizer), ("sgd", sgd_model, sgd)):
        before = _flat(net)
        optimizer.zero_grad()
        _squared_loss(net(x[:10]), y[:10]).backward()
        optimizer.step()
        steps[name] = top.T @ (_flat(net) - before)
    assert abs(steps["sgd"][0]) > 1e-4
    torch.testing.assert_close(steps["nsgd"][:2], gamma * steps["sgd"][:2], rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(steps["nsgd"][2:], steps["sgd"][2:], rtol=1e-9, atol=1e-14)


def test_max_steps_caps_the_per_epoch_lanczos():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 8, generator=gen, dtype=torch.float64) * torch.linspace(0.3, 3.0, 8, dtype=torch.float64)
    y = torch.randn(40, generator=gen, dtype=torch.float64)
    rows = {}
    for max_steps in (None, 3):
        ctx = _quadratic_context(0.5, x, y, 0.0)
        if max_steps:
            ctx.run["optimizer"]["max_steps"] = max_steps
        torch.manual_seed(0)
        rows[max_steps] = NSGDStrategy(ctx, nn.Linear(8, 1, bias=False).to(torch.float64)).on_epoch_start(1)
    assert rows[None]["nsgd_lanczos_steps"] > 3 and rows[None]["nsgd_converged2"]
    assert rows[3]["nsgd_lanczos_steps"] == 3


def test_nsgd_without_gamma_is_refused():
    ctx = _quadratic_context(1.0, torch.zeros(2, 2), torch.zeros(2), 0.0)
    ctx.run["optimizer"] = {"name": "nsgd", "kk": 2}
    with pytest.raises(ValueError, match="optimizer nsgd needs optimizer.gamma"):
        NSGDStrategy(ctx, nn.Linear(2, 1))


def _state(run_dir) -> dict:
    return model_from_checkpoint(final_checkpoint(run_dir)).state_dict()


def _history(run_dir) -> list[dict]:
    """history.tsv rows without the wall-clock column."""
    with open(RunFiles(str(run_dir)).history) as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle, delimiter="\t")]


def _cli(run: dict, out_dir, subset) -> subprocess.Popen:
    command = [sys.executable, "-m", "hessian_spectra", "train", "--run", json.dumps(run), "--out-dir", str(out_dir),
               "--subset", str(subset), "--threads", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    run = make_run(model="simple_cnn_medium", model_options={"width": 0.05}, image_size=16, epochs=5,
                   optimizer={"name": "nsgd", "gamma": 5.0, "kk": 2})
    subset = make_subset(run, tmp_path / "subset.pt")
    reference = tmp_path / "reference"
    assert _cli(run, reference, subset).wait(timeout=600) == 0

    killed = tmp_path / "killed"
    proc = _cli(run, killed, subset)
    second = Path(RunFiles(str(killed)).checkpoint(2))
    deadline = time.monotonic() + 600
    while not second.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not Path(RunFiles(str(killed)).checkpoint(5)).exists(), "the run was killed mid-way"

    resumed = _cli(run, killed, subset)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert "resuming after epoch" in stderr
    expected, actual = _state(reference), _state(killed)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert _history(reference) == _history(killed)
    strategy = load_checkpoint(final_checkpoint(killed))["trainer"]["strategy"]
    assert strategy["epoch"] == 5 and strategy["directions"].shape[1] == 2
    reference_strategy = load_checkpoint(final_checkpoint(reference))["trainer"]["strategy"]
    assert torch.equal(strategy["directions"], reference_strategy["directions"])


def test_nsgd_training_without_its_subset_file_is_refused(tmp_path):
    run = make_run()
    assert run["hessian_subset"]["size"] == 64 and run["subset"]["size"] == 64  # NSGD keeps its selection
    with pytest.raises(ValueError, match="optimizer nsgd trains on the Hessian subset; none was given"):
        train_run(run, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
