"""``hessian_spectra.Hessian``, the library's one-object front: its three calls and layer blocks against the exact
dense float64 Hessian, the engine's own result objects, and the package import staying torch-free."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from curvature_cases import case, layer_weights
from hessian_spectra import Hessian
from hessian_spectra.curvature import Estimate, LanczosResult, SpectralDensity, dense_hessian, make_batches


@pytest.fixture(scope="module")
def problem():
    """A small CNN with BatchNorm in float64, its 37 samples as (x, y), and its dense Hessian."""
    model, batches = case("cnn")
    model = model.double()
    x = torch.cat([b[0] for b in batches]).double()
    y = torch.cat([b[1] for b in batches])
    return model, x, y, dense_hessian(model, make_batches(x, y, 16))


def test_top_eigenvalues_match_the_dense_hessian_with_residuals(problem):
    model, x, y, H = problem
    exact = torch.linalg.eigvalsh(H).flip(0).numpy()
    top = Hessian(model, (x, y), batch_size=16).eigenvalues(4, tol=1e-8)
    assert isinstance(top, LanczosResult) and top.all_converged
    assert np.allclose(top.eigenvalues, exact[:4], rtol=1e-8)
    assert np.all(top.residuals <= 1e-8 * np.abs(top.eigenvalues))
    bottom = Hessian(model, (x, y)).eigenvalues(2, which="SA", tol=1e-8)
    assert np.allclose(bottom.eigenvalues, exact[::-1][:2], rtol=1e-6, atol=1e-10)


def test_trace_and_density_agree_with_the_dense_hessian_within_their_errors(problem):
    model, x, y, H = problem
    hessian = Hessian(model, (x, y))
    trace = hessian.trace(200)
    assert isinstance(trace, Estimate) and trace.products == 200
    assert abs(trace.value - torch.trace(H).item()) <= 3 * trace.stderr
    density = hessian.density(steps=30, probes=8)
    assert isinstance(density, SpectralDensity) and density.weights.shape == (8, 30)
    mean, stderr = density.moment(1)
    assert abs(mean * H.shape[0] - torch.trace(H).item()) <= 3 * stderr * H.shape[0]
    eigenvalues = torch.linalg.eigvalsh(H)
    assert eigenvalues[0] - 1e-8 <= density.nodes.min() and density.nodes.max() <= eigenvalues[-1] + 1e-8


def test_layer_blocks_are_the_diagonal_blocks_of_the_hessian(problem):
    model, x, y, H = problem
    names = layer_weights(model)
    blocks = Hessian(model, (x, y)).layer_blocks()
    assert blocks.blocks == names
    top = blocks.eigenvalues(2, tol=1e-8)
    assert top.eigenvalues.shape == (len(names), 2)
    trace = blocks.trace(50)
    densities = blocks.density(steps=6)
    assert isinstance(densities, list) and len(densities) == len(names)
    offsets, start = {}, 0
    for name, p in model.named_parameters():
        offsets[name] = slice(start, start + p.numel())
        start += p.numel()
    for b, name in enumerate(names):
        block = H[offsets[name], offsets[name]]
        assert np.allclose(top.eigenvalues[b], torch.linalg.eigvalsh(block).flip(0)[:2].numpy(), rtol=1e-7)
        assert abs(trace.value[b] - torch.trace(block).item()) <= 4 * trace.stderr[b]
        assert densities[b].dim == block.shape[0]


def test_data_as_batches_or_pairs_and_a_pyhessian_criterion_give_the_same_numbers(problem):
    model, x, y, _H = problem
    pair = Hessian(model, (x, y), batch_size=16).eigenvalues(3, tol=1e-8).eigenvalues
    batches = Hessian(model, make_batches(x, y, 10), nn.CrossEntropyLoss()).eigenvalues(3, tol=1e-8).eigenvalues
    assert np.allclose(pair, batches, rtol=1e-8)
    again = Hessian(model, (x, y), batch_size=16)
    assert np.array_equal(again.trace(20).samples, again.trace(20).samples), "seeded: a repeated call repeats"


@pytest.mark.parametrize("data", [(torch.zeros(0, 1, 6, 6), torch.zeros(0, dtype=torch.long)), []])
def test_empty_data_is_refused_with_one_line(problem, data):
    model = problem[0]
    with pytest.raises(ValueError, match="^data: "):
        Hessian(model, data)


def test_importing_the_package_does_not_import_torch():
    code = "import sys, hessian_spectra; assert 'torch' not in sys.modules; hessian_spectra.Hessian; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
