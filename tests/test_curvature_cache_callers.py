"""Every caller of the curvature engine reuses each batch's graph across all its algorithm's products: a spectrum
job, the chain-rule tracking, NSGD's per-epoch eigenvectors and ABSA's dominant eigenvalue."""

import torch
import torch.nn.functional as F
from torch import nn

from curvature_cases import case, vector_data
from hessian_spectra.chain_rule import TrackingRequest, track_checkpoint
from hessian_spectra.curvature.cached import CachedGGN, CachedHessian
from hessian_spectra.curvature.operator import DETERMINISM_SAMPLES
from hessian_spectra.spectrum import SpectrumRequest, compute_spectrum
from hessian_spectra.train.absa import ABSAStrategy
from hessian_spectra.train.nsgd import NSGDStrategy
from hessian_spectra.train.strategies import TrainContext

CHECK = [DETERMINISM_SAMPLES] * 2  # the determinism check builds two graphs on the first batch's first samples


def count_builds(monkeypatch) -> list[int]:
    """Batch sizes of every cached graph built from now on."""
    builds: list[int] = []
    for kind in (CachedHessian, CachedGGN):
        prepare = kind.prepare

        def counting(self, x, y, prepare=prepare):
            builds.append(len(x))
            return prepare(self, x, y)

        monkeypatch.setattr(kind, "prepare", counting)
    return builds


def test_a_spectrum_job_builds_each_graph_once_per_operator(monkeypatch):
    model, data = case("cnn")  # batches of 16, 16 and 5
    builds = count_builds(monkeypatch)
    request = SpectrumRequest(
        top_k=2, smallest_k=1, power_iters=4, trace_probes=3, frobenius_probes=2, density_steps=5, layers=True
    )
    result = compute_spectrum(model, data, request)
    assert len(result.rows) > 10
    assert builds == CHECK + [16, 16, 5] + [16, 16, 5], "full operator, then the layer-block operator"


class _Tracked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense1, self.dense2 = nn.Linear(6, 7), nn.Linear(7, 4)

    def forward(self, x):
        return self.dense2(torch.tanh(self.dense1(x)))


def test_chain_rule_tracking_builds_each_graph_once_per_term(monkeypatch):
    torch.manual_seed(0)
    builds = count_builds(monkeypatch)
    track_checkpoint(_Tracked(), vector_data(), TrackingRequest(frobenius_probes=4, top_k=2, max_steps=10))
    per_block = 3 * CHECK + 3 * [16, 16, 5]  # three operators (H, G, H - G) checked, then used one after another
    assert builds == 2 * per_block, "blocks dense1 and full"


def test_nsgd_epoch_eigenvectors_build_the_subset_graph_once(monkeypatch):
    torch.manual_seed(0)
    x, y = vector_data()[0]
    x, y = torch.cat([x] * 3), torch.cat([y] * 3)
    run = {"key": "t", "seed": 0, "lr": 0.1, "momentum": 0.0, "l2": 0.01,
           "optimizer": {"name": "nsgd", "gamma": 0.1, "kk": 3}}
    ctx = TrainContext(run=run, device=torch.device("cpu"), loss_fn=F.cross_entropy, subset=(x, y), train_data=(x, y))
    strategy = NSGDStrategy(ctx, nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)))
    builds = count_builds(monkeypatch)
    row = strategy.on_epoch_start(1)
    assert row["nsgd_lanczos_steps"] > 3
    assert builds == CHECK + [48]


def test_absa_power_iteration_builds_its_batch_graph_once(monkeypatch):
    torch.manual_seed(0)
    x, y = vector_data()[0]
    x, y = torch.cat([x] * 4), torch.cat([y] * 4)
    run = {"key": "t", "seed": 0, "lr": 0.1, "momentum": 0.9, "l2": 0.0, "batch_size": 8, "epochs": 4,
           "optimizer": {"name": "absa", "eig_batch": 32}}
    ctx = TrainContext(run=run, device=torch.device("cpu"), loss_fn=F.cross_entropy, subset=None, train_data=(x, y))
    strategy = ABSAStrategy(ctx, nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)))
    builds = count_builds(monkeypatch)
    result = strategy.dominant_eigenvalue(1)
    assert result.iterations > 1
    assert builds == [32]
