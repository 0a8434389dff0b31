"""Stochastic estimators (trace, Frobenius norm, SLQ density) against the exact dense float64 Hessian."""

import numpy as np
import pytest
import torch
from torch import nn

from curvature_cases import case, layer_weights, param_slices
from hessian_spectra.curvature import (
    CurvatureOperator,
    dense_hessian,
    dense_matrix,
    frobenius,
    hutchinson,
    hutchpp,
    lanczos_tridiagonal,
    make_batches,
    random_probes,
    slq,
    smooth_density,
)
from hessian_spectra.curvature.slq import trapezoid

F64 = torch.float64


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def problem(request):
    model, data = case(request.param)
    return CurvatureOperator(model, data, dtype=F64), dense_hessian(model, data)


def test_hutchinson_within_three_standard_errors(problem):
    op, H = problem
    est = hutchinson(op, 64, seed=3, batch=10)
    assert est.products == 64 and est.samples.shape == (1, 64)
    assert abs(est.value - torch.trace(H).item()) <= 3 * est.stderr


def test_frobenius_within_three_standard_errors(problem):
    op, H = problem
    est = frobenius(op, 64, seed=4)
    assert abs(est.value - torch.linalg.matrix_norm(H).item()) <= 3 * est.stderr


def test_slq_moments_and_normalisation(problem):
    op, H = problem
    n = op.shape[0]
    densities = slq(op, num_probes=24, num_steps=20, grid_points=512, sigma_rel=0.02, seed=5)
    assert len(densities) == 1
    d = densities[0]
    assert d.nodes.shape == d.weights.shape == (24, 20) and d.products == 24 * 20
    assert np.allclose(d.weights.sum(axis=1), 1.0, atol=1e-12)
    for power, exact in ((1, torch.trace(H).item() / n), (2, torch.trace(H @ H).item() / n)):
        value, stderr = d.moment(power)
        assert abs(value - exact) <= 3 * stderr, (power, value, exact, stderr)
    assert abs(trapezoid(d.density, d.grid) - 1.0) <= 1e-12
    span = d.nodes.max() - d.nodes.min()
    assert d.sigma == pytest.approx(0.02 * span)
    assert d.grid[0] < d.nodes.min() - 4 * d.sigma and d.grid[-1] > d.nodes.max() + 4 * d.sigma


def test_slq_quadrature_is_exact_per_probe(problem):
    """Gauss quadrature with M nodes integrates degree <= 2M-1 exactly: sum w theta^p = q^T H^p q."""
    op, H = problem
    V0 = random_probes(op, 3, "rademacher", 9, normalise=True)
    run = lanczos_tridiagonal(op, V0, 6)
    for lane in range(3):
        nodes, weights = run.ritz(0, lane)
        q = V0[:, lane]
        for power in range(0, 12):
            exact = q @ torch.linalg.matrix_power(H, power) @ q
            assert abs(np.sum(weights * nodes**power) - exact.item()) <= 1e-10 * max(1.0, abs(exact.item()))


def test_slq_on_layer_blocks_returns_one_density_per_block():
    model, data = case("cnn")
    H = dense_hessian(model, data)
    where = param_slices(model)
    blocks = layer_weights(model)
    op = CurvatureOperator(model, data, dtype=F64, blocks=blocks)
    densities = slq(op, num_probes=16, num_steps=200, grid_points=256, seed=2)  # past both block sizes
    assert len(densities) == len(blocks)
    for block, d in zip(blocks, densities):
        Hb = H[where[block], where[block]]
        size = Hb.shape[0]
        assert d.dim == size and d.steps <= size
        assert abs(trapezoid(d.density, d.grid) - 1.0) <= 1e-12
        eigs = torch.linalg.eigvalsh(Hb).numpy()
        live = d.weights > 0
        # nodes of lanes run to exhaustion are exact eigenvalues of the block
        assert np.all(np.min(np.abs(d.nodes[live][:, None] - eigs[None, :]), axis=1) <= 1e-10 * np.abs(eigs).max())
        value, stderr = d.moment(1)
        assert abs(value - eigs.mean()) <= 3 * stderr + 1e-12


def test_smooth_density_of_a_zero_spectrum():
    grid, density, sigma = smooth_density(np.zeros((2, 3)), np.array([[1.0, 0, 0], [1.0, 0, 0]]), 101, 0.01)
    assert sigma > 0 and abs(trapezoid(density, grid) - 1) <= 1e-12 and grid[50] == pytest.approx(0.0)


def _decaying_regression():
    """Least squares with rotated, geometrically decaying features: a Hessian with a decaying spectrum that is
    not diagonal in the coordinate basis (where Rademacher Hutchinson would be exact)."""
    gen = torch.Generator().manual_seed(5)
    d, c = 40, 2
    rotation = torch.linalg.qr(torch.randn(d, d, generator=gen))[0]
    x = (torch.randn(200, d, generator=gen) * 0.75 ** torch.arange(d)) @ rotation
    t = torch.randn(200, c, generator=gen)
    model = nn.Linear(d, c, bias=False)
    return CurvatureOperator(model, make_batches(x, t, 64), loss_fn=nn.functional.mse_loss, dtype=F64)


def test_hutchpp_beats_hutchinson_at_equal_products():
    op = _decaying_regression()
    exact = torch.trace(dense_matrix(op)).item()
    seeds = range(12)
    plain = [hutchinson(op, 30, seed=s) for s in seeds]
    plus = [hutchpp(op, 30, seed=s) for s in seeds]
    assert all(e.products == 30 for e in plain + plus)
    plain_err = np.mean([abs(e.value - exact) for e in plain])
    plus_err = np.mean([abs(e.value - exact) for e in plus])
    assert plus_err < 0.5 * plain_err, (plus_err, plain_err)
    # its own standard error is honest too
    assert np.mean([abs(e.value - exact) <= 3 * e.stderr for e in plus]) >= 0.8


def test_trace_and_frobenius_per_layer_block():
    model, data = case("mlp")
    H = dense_hessian(model, data)
    where = param_slices(model)
    blocks = layer_weights(model)
    op = CurvatureOperator(model, data, dtype=F64, blocks=blocks)
    trace = hutchpp(op, 90, seed=1)
    norm = frobenius(op, 64, seed=1)
    for b, block in enumerate(blocks):
        Hb = H[where[block], where[block]]
        assert abs(trace.value[b] - torch.trace(Hb).item()) <= 3 * trace.stderr[b] + 1e-12
        assert abs(norm.value[b] - torch.linalg.matrix_norm(Hb).item()) <= 3 * norm.stderr[b]
