"""Loss surfaces (``hessian_spectra.landscape``): grid, directions, exact evaluations, and curvature along eigenvectors."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from hessian_spectra.curvature import dense_hessian, make_batches
from hessian_spectra.landscape import (
    filter_normalized_direction,
    grid_coordinates,
    loss_surface,
    unflatten_direction,
)
from hessian_spectra.models import build_model


def tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", 1, 4, 3, hidden=[6], activation="tanh").double()


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return build_model("tf_cnn", 1, 16, 10, width=0.125)


def data(n: int, image_size: int, classes: int, dtype=torch.float32):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, image_size, image_size, generator=gen, dtype=dtype), torch.randint(
        0, classes, (n,), generator=gen
    )


def mean_loss(model: nn.Module, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y).item()


def test_grid_is_symmetric_with_an_exact_zero():
    coords = grid_coordinates(13, 0.3)
    assert len(coords) == 13 and coords[6] == 0.0
    assert coords[0] == -0.3 and coords[-1] == 0.3
    np.testing.assert_allclose(np.diff(coords), 0.05, rtol=1e-12)
    assert grid_coordinates(1, 0.3).tolist() == [0.0]
    with pytest.raises(ValueError):
        grid_coordinates(0, 0.3)


def test_second_differences_along_eigenvectors_match_their_eigenvalues():
    model = tiny_mlp()
    x, y = data(40, 4, 3, torch.float64)
    batches = make_batches(x, y, 16)  # 16 + 16 + 8: exercises the n_b / N weighting
    names = [name for name, _ in model.named_parameters()]
    values, vectors = torch.linalg.eigh(dense_hessian(model, batches))
    (lam1, lam2), (u1, u2) = values[[-1, -2]].tolist(), (vectors[:, -1], vectors[:, -2])
    assert lam1 > lam2 > 0
    h = 1e-3
    surface = loss_surface(
        model,
        batches,
        unflatten_direction(model, names, u1),
        unflatten_direction(model, names, u2),
        np.array([-h, 0.0, h]),
        dtype=torch.float64,
    )
    L = surface.loss
    assert (L[2, 1] - 2 * L[1, 1] + L[0, 1]) / h**2 == pytest.approx(lam1, rel=0.01)
    assert (L[1, 2] - 2 * L[1, 1] + L[1, 0]) / h**2 == pytest.approx(lam2, rel=0.01)
    assert abs((L[2, 2] - L[2, 0] - L[0, 2] + L[0, 0]) / (4 * h**2)) < 0.01 * lam1  # u1' H u2 = 0
    assert L[1, 1] == pytest.approx(mean_loss(model, x, y), rel=1e-12)


def test_an_n_by_n_grid_costs_n_squared_loss_evaluations():
    model = tiny_cnn()
    x, y = data(30, 16, 10)
    d1 = filter_normalized_direction(model, generator=torch.Generator().manual_seed(0))
    d2 = filter_normalized_direction(model, generator=torch.Generator().manual_seed(1))
    for batch_size, num_batches in ((30, 1), (10, 3)):
        calls = []

        def counting_loss(outputs, targets):
            calls.append(len(targets))
            return nn.functional.cross_entropy(outputs, targets)

        surface = loss_surface(
            model, make_batches(x, y, batch_size), d1, d2, grid_coordinates(5, 0.2), loss_fn=counting_loss
        )
        assert surface.evaluations == 25
        assert len(calls) == 25 * num_batches and sum(calls) == 25 * len(x)
        assert surface.loss.shape == surface.accuracy.shape == (5, 5)


def test_filter_normalised_directions_have_thetas_filter_norms():
    model = tiny_cnn()
    named = dict(model.named_parameters())
    direction = filter_normalized_direction(model, generator=torch.Generator().manual_seed(3))
    assert set(direction) == set(named)
    for name, d in direction.items():
        theta = named[name].detach()
        if theta.ndim == 1:
            assert torch.count_nonzero(d) == 0, name  # biases are not moved (Li et al.)
        else:
            torch.testing.assert_close(
                d.reshape(len(d), -1).norm(dim=1), theta.reshape(len(theta), -1).norm(dim=1), rtol=1e-5, atol=0
            )
            assert not torch.allclose(d, theta)
    again = filter_normalized_direction(model, generator=torch.Generator().manual_seed(3))
    other = filter_normalized_direction(model, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(direction[n], again[n]) for n in named)
    assert not torch.equal(direction["dense3.weight"], other["dense3.weight"])
    assert set(filter_normalized_direction(model, ["dense3.weight"])) == {"dense3.weight"}


def test_points_are_built_from_theta_and_reusing_unmoved_layers_changes_nothing():
    model = tiny_cnn().double()
    x, y = data(24, 16, 10, torch.float64)
    gen = torch.Generator().manual_seed(5)
    moved = ["dense2.weight", "dense2.bias", "dense3.weight"]
    named = dict(model.named_parameters())
    d1 = {name: torch.randn(named[name].shape, generator=gen, dtype=torch.float64) for name in moved}
    d2 = {"dense3.weight": torch.randn(named["dense3.weight"].shape, generator=gen, dtype=torch.float64)}
    coords = grid_coordinates(3, 0.5)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    surface = loss_surface(model, make_batches(x, y, 10), d1, d2, coords)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), "the model's parameters must not change"
    for i, c1 in enumerate(coords):
        for j, c2 in enumerate(coords):
            moved_model = copy.deepcopy(model)
            with torch.no_grad():
                for name, p in moved_model.named_parameters():
                    p.add_(c1 * d1.get(name, torch.zeros_like(p)) + c2 * d2.get(name, torch.zeros_like(p)))
            assert surface.loss[i, j] == pytest.approx(mean_loss(moved_model, x, y), rel=1e-12)


def test_unflatten_direction_maps_a_flat_vector_onto_named_parameters():
    model = tiny_cnn()
    names = ["dense2.bias", "dense3.weight"]
    sizes = [model.dense2.bias.numel(), model.dense3.weight.numel()]
    vector = torch.arange(sum(sizes), dtype=torch.float64)
    direction = unflatten_direction(model, names, vector)
    assert torch.equal(direction["dense2.bias"], vector[: sizes[0]])
    assert torch.equal(direction["dense3.weight"].reshape(-1), vector[sizes[0] :])
    with pytest.raises(ValueError, match="needs"):
        unflatten_direction(model, names, vector[:-1])
    with pytest.raises(ValueError, match="unknown"):
        unflatten_direction(model, ["nope"], vector)
    with pytest.raises(ValueError, match="unknown: nope"):
        loss_surface(
            model, [(torch.zeros(1, 1, 16, 16), torch.zeros(1, dtype=torch.long))], {"nope": vector}, {}, [0.0]
        )
