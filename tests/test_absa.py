"""ABSA: the schedule on scripted eigenvalues (halving, patience, cap, second half), FGSM's exact eps-sign step
with BatchNorm and parameter gradients untouched, the strategy's plans and history, and bitwise resume."""

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
import torch.nn.functional as F
from torch.func import functional_call, grad

from conftest import REPO
from hessian_spectra.checkpoint import model_from_checkpoint
from hessian_spectra.curvature import PowerResult
from hessian_spectra.layout import RunFiles
from hessian_spectra.models import build_model
from hessian_spectra.runs import load_yaml, plan_runs
from hessian_spectra.train.absa import ABSASchedule, ABSAStrategy, adversarial_count, fgsm
from hessian_spectra.train.strategies import TrainContext

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
EPS = 2.0**-8  # x + EPS is exact in float32 for pixels k / 16, so the step can be compared exactly


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the products here are tiny, and spinning threads stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_run(**overrides) -> dict:
    """A small planned ABSA run of the study on digits (c1 at 8x8)."""
    entry = {"model": "c1", "model_options": {"width": 0.125}, "dataset": "digits", "image_size": 8,
             "batch_size": 32, "epochs": 6, "lr": 0.02,
             "optimizer": {"name": "absa", "max_ratio": 8, "adv_ratio": 0.25, "eps": 0.005, "patience": 1,
                           "eig_batch": 32}}
    entry.update(overrides)
    study = {"runs": [entry], "hessian_subset": {"split": "test", "size": 64, "selection": "first"}}
    (run,) = plan_runs({"studies": {"hessianflow": study}}, SCHEMA).values()
    return run


def test_schedule_doubles_on_halved_eigenvalue_and_after_patience_then_stops_at_cap():
    s = ABSASchedule(max_ratio=8, adv_ratio=0.2, patience=3, epochs=40)
    assert not s.observe(10.0) and (s.ratio, s.lambda_ref, s.lr_factor, s.adv_ratio) == (1, 10.0, 1.0, 0.2)
    assert not s.observe(6.0) and s.lambda_ref == 10.0  # 6 > 10 / 2
    assert s.observe(5.0)  # 5 <= 10 / 2
    assert (s.ratio, s.lambda_ref, s.lr_factor, s.adv_ratio, s.quiet) == (2, 5.0, 2.0, 0.1, 0)
    assert not s.observe(4.0) and not s.observe(3.0)
    assert s.observe(2.6)  # not halved (2.6 > 2.5), but 3 epochs without a change
    assert (s.ratio, s.lambda_ref, s.lr_factor, s.adv_ratio) == (4, 2.6, 4.0, 0.05)
    assert s.checking and s.observe(1.3)  # halved: reaches the cap
    assert (s.ratio, s.lr_factor, s.adv_ratio, s.checking) == (8, 8.0, 0.0, False)
    assert s.adversarial_ratio(1) == 0.0
    with pytest.raises(RuntimeError, match="cap"):
        s.observe(0.1)


def test_schedule_patience_counts_the_first_epoch_and_a_cap_below_the_next_doubling():
    s = ABSASchedule(max_ratio=6, adv_ratio=0.4, patience=2, epochs=10)
    assert not s.observe(10.0)
    assert s.observe(9.0) and (s.ratio, s.lr_factor, s.lambda_ref) == (2, 2.0, 9.0)
    assert not s.observe(8.0) and s.observe(8.0) and s.ratio == 4
    assert s.observe(4.0) and (s.ratio, s.lr_factor, s.adv_ratio, s.checking) == (6, 6.0, 0.0, False)


@pytest.mark.parametrize("epochs, last_adversarial", [(10, 4), (9, 4), (3, 1), (2, 0)])
def test_adversarial_samples_stop_from_half_the_epochs(epochs, last_adversarial):
    s = ABSASchedule(max_ratio=4, adv_ratio=0.2, patience=10, epochs=epochs)
    used = [epoch for epoch in range(1, epochs + 1) if s.adversarial_ratio(epoch) > 0]
    assert used == list(range(1, last_adversarial + 1))


def test_schedule_state_round_trip_and_no_adversarial_training_without_room_to_grow():
    s = ABSASchedule(max_ratio=8, adv_ratio=0.2, patience=3, epochs=10)
    s.observe(4.0)
    s.observe(1.0)
    t = ABSASchedule(max_ratio=8, adv_ratio=0.2, patience=3, epochs=10)
    t.load_state_dict(s.state_dict())
    assert t == s and t.observe(0.5) == s.observe(0.5) and t == s
    assert ABSASchedule(max_ratio=1, adv_ratio=0.2, patience=3, epochs=10).adversarial_ratio(1) == 0.0
    with pytest.raises(ValueError, match="max_ratio"):
        ABSASchedule(max_ratio=0, adv_ratio=0.2, patience=3, epochs=10)


def test_adversarial_count_follows_the_source():
    assert [adversarial_count(128, 0.2), adversarial_count(16, 0.2), adversarial_count(16, 0.07)] == [25, 3, 1]
    assert adversarial_count(16, 0.05) == 0 and adversarial_count(16, 0.0) == 0


def _c1_in_training():
    torch.manual_seed(0)
    model = build_model("c1", 1, 8, 10, width=0.125)
    model.train()
    with torch.no_grad():  # non-trivial running statistics, so that eval mode differs from training mode
        for _ in range(3):
            model(torch.rand(32, 1, 8, 8))
    return model


def _pixels(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 17, (n, 1, 8, 8), generator=gen).float() / 16, torch.randint(0, 10, (n,), generator=gen)


def test_fgsm_moves_every_pixel_by_eps_along_the_input_gradient_sign():
    model = _c1_in_training()
    x, y = _pixels(12)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    accumulated = {n: torch.full_like(p, 0.5) for n, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.grad = accumulated[name].clone()

    x_adv = fgsm(model, x, y, EPS)

    model.eval()
    state = {k: v.detach() for k, v in {**dict(model.named_parameters()), **dict(model.named_buffers())}.items()}
    reference = grad(lambda xx: F.cross_entropy(functional_call(model, state, (xx,)), y))(x)
    model.train()
    assert (reference != 0).float().mean() > 0.9
    assert torch.equal(x_adv - x, EPS * reference.sign())
    with torch.no_grad():
        model.eval()
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)
        model.train()
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers()), "BatchNorm statistics changed"
    assert all(torch.equal(p.grad, accumulated[n]) for n, p in model.named_parameters()), "parameter grads touched"
    assert not x_adv.requires_grad


def _strategy(run: dict, model) -> ABSAStrategy:
    x, y = _pixels(256, seed=1)
    ctx = TrainContext(run=run, device=torch.device("cpu"), loss_fn=F.cross_entropy, subset=(x[:8], y[:8]),
                       train_data=(x, y))
    return ABSAStrategy(ctx, model)


def test_prepare_batch_replaces_the_leading_fraction_by_fgsm_samples_in_the_first_half_only():
    run = make_run(batch_size=8, epochs=4)
    model = _c1_in_training()
    strategy = _strategy(run, model)
    strategy.eps = EPS
    x, y = _pixels(8, seed=2)
    out_x, out_y = strategy.prepare_batch(x, y, epoch=1)
    assert torch.equal(out_y, y) and torch.equal(out_x[2:], x[2:])  # 0.25 * 8 = 2 adversarial samples
    assert torch.equal(out_x[:2], fgsm(model, x[:2], y[:2], EPS))
    assert not torch.equal(out_x[:2], x[:2])
    late_x, _ = strategy.prepare_batch(x, y, epoch=2)
    assert torch.equal(late_x, x)


def test_strategy_plans_and_history_columns_follow_scripted_eigenvalues(monkeypatch):
    run = make_run(batch_size=16, epochs=8, lr=0.1,
                   optimizer={"name": "absa", "max_ratio": 4, "adv_ratio": 0.2, "eps": 0.005, "patience": 5,
                              "eig_batch": 32})
    strategy = _strategy(run, _c1_in_training())
    script = iter([8.0, 3.9, 3.0, 1.5])
    monkeypatch.setattr(
        strategy, "dominant_eigenvalue",
        lambda epoch: PowerResult(next(script), torch.zeros(1), 0.25, True, iterations=3, products=3),
    )
    rows = []
    for epoch in range(1, 6):
        plan = strategy.epoch_plan(epoch)
        rows.append((plan.batch_size, plan.micro_batch_size, plan.lr_factor, strategy.on_epoch_end(epoch, {})))
    assert [r[:3] for r in rows] == [(16, 16, 1.0), (16, 16, 1.0), (32, 16, 2.0), (32, 16, 2.0), (64, 16, 4.0)]
    history = [r[3] for r in rows]
    assert [h["effective_batch_size"] for h in history] == [16, 16, 32, 32, 64]
    assert [h["adv_ratio"] for h in history] == [0.2, 0.2, 0.1, 0.0, 0.0]  # halved, then epoch >= 8 / 2
    assert [h["lambda_ref"] for h in history] == [8.0, 3.9, 3.9, 1.5, 1.5]
    assert history[3]["lambda_residual"] == 0.25 and history[3]["lambda_stopped"] is True
    assert history[3]["lambda_relative_residual"] == 0.25 / 1.5, "the residual relative to the estimate"
    assert np.isnan(history[4]["lambda"]), "no check at the cap"


def test_dominant_eigenvalue_is_seeded_by_epoch_and_leaves_the_model_in_training_mode():
    strategy = _strategy(make_run(), _c1_in_training())
    first, again, other = (strategy.dominant_eigenvalue(e) for e in (3, 3, 4))
    assert first.eigenvalue == again.eigenvalue and first.eigenvalue != other.eigenvalue
    assert first.iterations <= 10 and strategy.model.training


def _cli(run: dict, out_dir) -> subprocess.Popen:
    command = [sys.executable, "-m", "hessian_spectra", "train", "--run", json.dumps(run), "--out-dir", str(out_dir),
               "--threads", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _history(path) -> list[dict]:
    with open(path) as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle, delimiter="\t")]


def test_absa_resume_after_sigkill_is_bitwise_identical(tmp_path):
    run = make_run()
    reference = tmp_path / "reference"
    uninterrupted = _cli(run, reference)
    _, stderr = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, stderr

    killed = tmp_path / "killed"
    proc = _cli(run, killed)
    second = Path(RunFiles(str(killed)).checkpoint(2))
    deadline = time.monotonic() + 300
    while not second.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not Path(RunFiles(str(killed)).checkpoint(run["epochs"])).exists(), "the run was killed mid-way"

    resumed = _cli(run, killed)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert "resuming after epoch" in stderr
    final = [RunFiles(str(d)).checkpoint(run["epochs"]) for d in (reference, killed)]
    expected, actual = (model_from_checkpoint(path).state_dict() for path in final)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after resume"
    history = _history(RunFiles(str(reference)).history)
    assert _history(RunFiles(str(killed)).history) == history
    assert [int(row["ratio"]) for row in history[1:]] == [1, 2, 4, 8, 8, 8], "the schedule ran through the kill"
    assert [float(row["adv_ratio"]) for row in history[1:3]] == [0.25, 0.125]
