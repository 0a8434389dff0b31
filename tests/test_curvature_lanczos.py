"""Lanczos and power iteration against the exact dense float64 Hessian."""

import numpy as np
import pytest
import torch

from curvature_cases import case, layer_weights, param_slices
from hessian_spectra.curvature import (
    CurvatureOperator,
    Operator,
    dense_hessian,
    lanczos,
    lanczos_tridiagonal,
    power_iteration,
    random_probes,
)
from hessian_spectra.curvature.convergence import converged_within, relative_residual
from hessian_spectra.spectrum import result_row

F64 = torch.float64


def exact(name):
    model, data = case(name)
    H = dense_hessian(model, data)
    values, vectors = torch.linalg.eigh(H)
    return model, data, H, values.flip(0).numpy(), vectors.flip(1)


class MatrixOperator(Operator):
    """A dense symmetric matrix as an operator (for algorithm-only tests)."""

    def __init__(self, M: torch.Tensor, segments=None) -> None:
        super().__init__()
        self.M, self.shape, self.device = M, tuple(M.shape), M.device
        self.segments = tuple(segments or [(0, M.shape[0])])
        self.blocks = None if segments is None else [str(i) for i in range(len(self.segments))]

    def _matmat(self, V):
        return self.M @ V


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_top5_float64(name):
    model, data, H, values, vectors = exact(name)
    op = CurvatureOperator(model, data, dtype=F64)
    res = lanczos(op, k=5, tol=1e-10, eigenvectors=True, explicit_residuals=True)
    assert res.converged.all() and res.all_converged
    assert np.max(np.abs(res.eigenvalues - values[:5]) / np.abs(values[:5])) <= 1e-8
    assert res.products == res.steps + 5  # explicit residuals cost one product each
    gaps = np.abs(np.diff(values[:6]))
    for i in range(5):
        if min(gaps[i], gaps[i - 1] if i else np.inf) > 1e-3 * abs(values[0]):
            cos = abs(float(res.eigenvectors[:, i] @ vectors[:, i]))
            assert cos >= 1 - 1e-6
    # explicit residuals ||H u - theta u|| with the dense matrix agree with the reported ones
    U = res.eigenvectors
    dense_res = (H @ U - U * torch.from_numpy(res.eigenvalues)).norm(dim=0).numpy()
    assert np.allclose(res.residuals, dense_res, rtol=1e-3, atol=1e-13)
    assert np.all(res.estimated_residuals <= 1e-10 * np.abs(res.eigenvalues) + 1e-14)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_top5_float32(name):
    model, data, _, values, _ = exact(name)
    res = lanczos(CurvatureOperator(model, data), k=5, tol=1e-6)
    assert res.all_converged
    assert np.max(np.abs(res.eigenvalues - values[:5]) / np.abs(values[:5])) <= 1e-4


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_smallest_algebraic(name):
    model, data, _, values, _ = exact(name)
    assert values[-1] < 0, "the test models have negative curvature"
    res = lanczos(CurvatureOperator(model, data, dtype=F64), k=3, which="SA", tol=1e-10)
    assert res.all_converged
    assert np.max(np.abs(res.eigenvalues - values[::-1][:3]) / np.abs(values[::-1][:3])) <= 1e-8


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_layer_blocks_spectra_run_to_completion(name):
    model, data, H, _, _ = exact(name)
    blocks = layer_weights(model)
    where = param_slices(model)
    op = CurvatureOperator(model, data, dtype=F64, blocks=blocks)
    sizes = [where[b].stop - where[b].start for b in blocks]
    k = max(sizes)
    top = lanczos(op, k=k, tol=1e-10, max_steps=2 * k)
    bottom = lanczos(op, k=1, which="SA", tol=1e-10, max_steps=2 * k)
    assert top.eigenvalues.shape == (len(blocks), k)
    for b, (block, size) in enumerate(zip(blocks, sizes)):
        dense = torch.linalg.eigvalsh(H[where[block], where[block]]).flip(0).numpy()
        found = top.eigenvalues[b, :size]
        assert np.all(np.isnan(top.eigenvalues[b, size:]))
        assert np.allclose(found, dense, rtol=0, atol=1e-10 * np.abs(dense).max())
        assert top.converged[b, :size].all()
        assert abs(bottom.eigenvalues[b, 0] - dense[-1]) <= 1e-10 * np.abs(dense).max()
    assert any(bottom.eigenvalues[:, 0] < 0), "some block has negative curvature, and it is found"


def test_basis_is_orthonormal():
    model, data = case("cnn")
    op = CurvatureOperator(model, data)  # float32 products: orthogonality is the algorithm's job
    V0 = random_probes(op, 3, "rademacher", 0)
    run = lanczos_tridiagonal(op, V0, 40, keep_basis=True)
    for lane in range(3):
        Q = run.basis[0][:40, lane]
        gram = Q @ Q.T
        assert torch.linalg.matrix_norm(gram - torch.eye(40, dtype=F64), ord=2) <= 1e-10
    res = lanczos(op, k=5, tol=1e-8, num_starts=2, keep_basis=True)
    Q = res.basis[0][: res.steps].reshape(-1, op.shape[0])
    gram = Q @ Q.T
    assert torch.linalg.matrix_norm(gram - torch.eye(len(Q), dtype=F64), ord=2) <= 1e-10


def test_tridiagonal_is_the_projection():
    model, data, H, _, _ = exact("mlp")
    op = CurvatureOperator(model, data, dtype=F64)
    run = lanczos_tridiagonal(op, random_probes(op, 2, "gaussian", 1), 15, keep_basis=True)
    for lane in range(2):
        alpha, beta = run.tridiagonal(0, lane)
        T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
        Q = run.basis[0][:15, lane]
        assert np.allclose(T, (Q @ H @ Q.T).numpy(), rtol=0, atol=1e-12)


def test_several_starts_resolve_a_double_eigenvalue():
    gen = torch.Generator().manual_seed(0)
    Qm = torch.linalg.qr(torch.randn(60, 60, generator=gen, dtype=F64))[0]
    spectrum = torch.cat([torch.tensor([10.0, 10.0, 7.0], dtype=F64), torch.linspace(-1, 1, 57, dtype=F64)])
    op = MatrixOperator(Qm @ torch.diag(spectrum) @ Qm.T)
    block = lanczos(op, k=3, tol=1e-10, num_starts=2)
    assert np.allclose(block.eigenvalues, [10.0, 10.0, 7.0], atol=1e-9)
    assert block.products == 2 * block.steps


def test_unconverged_results_are_flagged():
    gen = torch.Generator().manual_seed(0)
    Qm = torch.linalg.qr(torch.randn(400, 400, generator=gen, dtype=F64))[0]
    op = MatrixOperator(Qm @ torch.diag(torch.linspace(0, 1, 400, dtype=F64)) @ Qm.T)  # no gaps: slow
    res = lanczos(op, k=5, tol=1e-12, max_steps=12)
    assert res.steps == 12 and not res.all_converged and not res.converged.all()


def test_block_operator_zero_block_and_exhaustion():
    M = torch.block_diag(torch.zeros(4, 4, dtype=F64), torch.diag(torch.arange(1.0, 7.0, dtype=F64)))
    op = MatrixOperator(M, segments=[(0, 4), (4, 10)])
    res = lanczos(op, k=3, tol=1e-10)
    assert np.allclose(res.eigenvalues[0], 0) and res.converged[0].all()
    assert np.allclose(res.eigenvalues[1], [6, 5, 4]) and res.converged[1].all()


def test_power_iteration_agrees_with_lanczos_on_a_separated_top_eigenvalue():
    model, data, _, values, _ = exact("mlp")
    assert values[0] / values[1] > 1.2, "the MLP's top eigenvalue is well separated"
    op = CurvatureOperator(model, data, dtype=F64)
    power = power_iteration(op, max_iter=200, tol=1e-10, seed=0)
    top = lanczos(op, k=1, tol=1e-10)
    assert power.stopped and power.iterations < 200
    assert abs(power.eigenvalue - top.eigenvalues[0]) <= 1e-6 * values[0]
    assert abs(power.eigenvalue - values[0]) <= 1e-6 * values[0]
    # HessianFlow settings: 10 iterations at most, relative tolerance 1e-2
    quick = power_iteration(op, seed=0)
    assert quick.iterations <= 10 and quick.products == quick.iterations
    assert abs(quick.eigenvalue - values[0]) <= 0.1 * values[0]
    Hv = op.matmat(quick.eigenvector[:, None])[:, 0]
    assert abs((Hv - quick.eigenvalue * quick.eigenvector).norm().item() - quick.residual) <= 1e-12


def test_power_iterations_stopping_rule_is_not_convergence_on_an_indefinite_matrix():
    """|lambda_min| close to lambda_max: the Rayleigh quotient stalls, PyHessian's relative-change rule fires, and
    the residual shows the estimate is far from any eigenvalue (the issue's hessianflow epoch 0)."""
    M = torch.diag(torch.tensor([1.0, -0.99, 0.3, 0.2, -0.1, 0.05], dtype=F64))
    power = power_iteration(MatrixOperator(M), seed=0)
    relative = relative_residual(power.eigenvalue, power.residual)
    assert power.stopped and power.iterations < 10
    assert abs(power.eigenvalue - 1.0) > 1e-2 and relative > 0.1
    row = result_row("full", "power_eigenvalue", 1, power.eigenvalue, residual=power.residual, tolerance=1e-4,
                     stopped=power.stopped)
    assert row["stopped"] is True and row["converged"] is False
    assert row["relative_residual"] == pytest.approx(relative)


def test_converged_means_a_relative_residual_within_the_tolerance():
    values, residuals = np.array([10.0, 10.0, 1e-3, 0.0, 0.0, np.nan]), np.array([1e-4, 1e-2, 1e-5, 0.0, 1e-9, 0.1])
    np.testing.assert_array_equal(relative_residual(values, residuals), [1e-5, 1e-3, 1e-2, 0.0, np.inf, np.nan])
    np.testing.assert_array_equal(converged_within(values, residuals, 1e-4), [True, False, False, True, False, False])
