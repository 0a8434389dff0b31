"""The Hessian chain rule H = G + (H - G): the curvature-term operator against dense oracles, ReLU vs tanh, and the
per-checkpoint tracking (Frobenius estimates and top eigenvalues against the dense matrices)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from hessian_spectra.chain_rule import (
    COLUMNS,
    TERMS,
    TrackingRequest,
    average_loss,
    chain_rule_operators,
    track_checkpoint,
)
from hessian_spectra.curvature import dense_hessian, dense_matrix, make_batches
from hessian_spectra.models import build_model

DENSE1 = ["dense1.weight"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread, as the workflow's jobs run: on a shared 2-core machine more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_mlp(activation: str, image_size: int = 4, init_sd: float = 0.5, dtype=torch.float64):
    """The study's mlp at a size whose dense Hessian is cheap (image_size 4: 124 parameters, dense1 80)."""
    torch.manual_seed(0)
    model = build_model("mlp", 1, image_size, 3, activation=activation, init_sd=init_sd, hidden=[5, 4])
    return model.to(dtype)


def data(image_size: int = 4, num: int = 21, batch_size: int = 8, dtype=torch.float64):
    """Uneven batches (8 + 8 + 5) of random images and labels."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(num, 1, image_size, image_size, generator=gen, dtype=dtype)
    y = torch.randint(0, 3, (num,), generator=gen)
    return make_batches(x, y, batch_size)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("params", [DENSE1, None], ids=["dense1", "full"])
def test_curvature_term_is_the_hessian_minus_the_gauss_newton_term(activation, params):
    model, batches = small_mlp(activation), data()
    H = dense_hessian(model, batches, params=params)
    G = dense_hessian(model, batches, params=params, curvature="ggn")
    C = dense_matrix(chain_rule_operators(model, batches, params)["H_minus_G"])
    assert torch.allclose(C, H - G, rtol=0, atol=1e-12 * H.abs().max())


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("params", [DENSE1, None], ids=["dense1", "full"])
def test_gauss_newton_plus_curvature_products_equal_hessian_products(activation, params):
    model, batches = small_mlp(activation, image_size=6), data(image_size=6)
    ops = chain_rule_operators(model, batches, params, l2=0.01)
    V = torch.randn(ops["H"].shape[0], 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    HV = ops["H"].matmat(V)
    assert torch.allclose(ops["G"].matmat(V) + ops["H_minus_G"].matmat(V), HV, rtol=0, atol=1e-12 * HV.abs().max())


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_curvature_term_of_a_piecewise_linear_first_layer_is_zero(activation):
    model, batches = small_mlp(activation), data()
    H = dense_hessian(model, batches, params=DENSE1)
    G = dense_hessian(model, batches, params=DENSE1, curvature="ggn")
    assert (H - G).abs().max() <= 1e-13 * H.abs().max()  # zero to rounding as a difference
    assert torch.count_nonzero(dense_matrix(chain_rule_operators(model, batches, DENSE1)["H_minus_G"])) == 0
    full = {term: dense_matrix(op).norm() for term, op in chain_rule_operators(model, batches).items()}
    assert full["H_minus_G"] > 1e-3 * full["H"]  # cross-layer terms are not zero


def test_curvature_term_of_a_tanh_first_layer_is_not_zero():
    model, batches = small_mlp("tanh"), data()
    ops = chain_rule_operators(model, batches, DENSE1)
    assert dense_matrix(ops["H_minus_G"]).norm() > 0.05 * dense_matrix(ops["H"]).norm()


def test_average_loss_weighs_uneven_batches_exactly():
    model, batches = small_mlp("tanh"), data()
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert average_loss(model, batches) == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-12)


PROBES = 2000  # the estimate's standard error is then about 1.5% here, so 5% is over 3 standard errors


@pytest.fixture(scope="module")
def tracked():
    """One checkpoint of a float32 tanh mlp on 6x6 inputs (dense1: 36 x 10 = 360 parameters, 494 in all), tracked
    with enough probes for a 5% Frobenius estimate, and the dense float64 matrices of every term and block."""
    torch.manual_seed(0)
    model = build_model("mlp", 1, 6, 4, activation="tanh", init_sd=0.3, hidden=[10, 8])
    gen = torch.Generator().manual_seed(3)
    x, y = torch.rand(50, 1, 6, 6, generator=gen), torch.randint(0, 4, (50,), generator=gen)
    request = TrackingRequest(block="dense1.weight", frobenius_probes=PROBES, top_k=2, tol=1e-6, max_steps=200)
    rows = track_checkpoint(model, [(x, y)], request)
    model64, batches64 = copy.deepcopy(model).double(), [(x.double(), y)]
    dense = {}
    for block, params in (("dense1", DENSE1), ("full", None)):
        for term, op in chain_rule_operators(model64, batches64, params).items():
            dense[block, term] = dense_matrix(op)
    return rows, dense, average_loss(model, [(x, y)])


def _value(rows, block, quantity, index=0):
    (row,) = [r for r in rows if (r["block"], r["quantity"], r["index"]) == (block, quantity, index)]
    return row


def test_tracking_rows_cover_every_term_and_block(tracked):
    rows, _, loss = tracked
    assert all(set(row) == set(COLUMNS) for row in rows)
    assert _value(rows, "full", "loss")["value"] == pytest.approx(loss)
    expected = {("full", "loss", 0)}
    for block in ("dense1", "full"):
        for term in TERMS:
            expected |= {(block, f"frobenius_{term}", 0), (block, f"top_eig_{term}", 1), (block, f"top_eig_{term}", 2)}
    assert {(r["block"], r["quantity"], r["index"]) for r in rows} == expected


@pytest.mark.parametrize("block", ["dense1", "full"])
@pytest.mark.parametrize("term", TERMS)
def test_frobenius_estimate_is_within_5_percent_of_the_dense_norm(tracked, block, term):
    rows, dense, _ = tracked
    exact = torch.linalg.matrix_norm(dense[block, term]).item()
    row = _value(rows, block, f"frobenius_{term}")
    assert row["products"] == PROBES
    assert abs(row["value"] - exact) < 0.05 * exact
    assert abs(row["value"] - exact) < 3 * row["stderr"]


@pytest.mark.parametrize("block", ["dense1", "full"])
@pytest.mark.parametrize("term", TERMS)
def test_top_eigenvalues_match_the_dense_spectrum(tracked, block, term):
    rows, dense, _ = tracked
    exact = torch.linalg.eigvalsh(dense[block, term]).flip(0)[:2].tolist()
    for index in (1, 2):
        row = _value(rows, block, f"top_eig_{term}", index)
        assert row["converged"] and math.isfinite(row["residual"])
        assert row["value"] == pytest.approx(exact[index - 1], rel=1e-4, abs=1e-5 * abs(exact[0]))
