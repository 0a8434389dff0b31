"""The curvature operator against the dense float64 Hessian: weighting, modes, subsets, l2, determinism."""

import pytest
import torch
from torch import nn

from curvature_cases import (
    BATCH_SIZE,
    NUM_SAMPLES,
    case,
    cnn,
    image_data,
    layer_weights,
    mlp,
    param_slices,
    vector_data,
)
from hessian_spectra.curvature import (
    CurvatureOperator,
    NondeterminismError,
    dense_hessian,
    dense_matrix,
    make_batches,
    random_probes,
)

F64 = torch.float64


def probes(op, k=3, seed=0):
    return random_probes(op, k, "gaussian", seed)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("mode", ["forward", "double_backward"])
def test_products_equal_dense_hessian(name, mode):
    model, data = case(name)
    H = dense_hessian(model, data)
    op = CurvatureOperator(model, data, dtype=F64, mode=mode)
    V = probes(op)
    assert torch.allclose(op.matmat(V), H @ V, rtol=0, atol=1e-12 * H.abs().max())
    assert op.products == 3


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_forward_and_double_backward_agree(name):
    model, data = case(name)
    for curvature in ("hessian", "ggn"):
        fwd = CurvatureOperator(model, data, dtype=F64, curvature=curvature, mode="forward")
        dbl = CurvatureOperator(model, data, dtype=F64, curvature=curvature, mode="double_backward")
        V = probes(fwd, 4)
        a, b = fwd.matmat(V), dbl.matmat(V)
        assert (a - b).abs().max() <= 1e-13 * a.abs().max()


def test_float32_products_close_to_float64():
    model, data = case("cnn")
    op32, op64 = CurvatureOperator(model, data), CurvatureOperator(model, data, dtype=F64)
    V = probes(op32)
    a, b = op32.matmat(V), op64.matmat(V)
    assert a.dtype == F64 and (a - b).norm() <= 1e-5 * b.norm()
    assert next(model.parameters()).dtype == torch.float32, "float64 mode must convert a copy"


def test_ggn_matches_dense_ggn():
    model, data = case("cnn")
    G = dense_hessian(model, data, curvature="ggn")
    op = CurvatureOperator(model, data, dtype=F64, curvature="ggn")
    V = probes(op)
    assert torch.allclose(op.matmat(V), G @ V, rtol=0, atol=1e-12 * G.abs().max())
    assert torch.linalg.eigvalsh(G).min() > -1e-12, "the GGN of a convex loss is positive semi-definite"


def test_uneven_batches_weigh_exactly():
    model = mlp()
    data = vector_data()
    whole = [(torch.cat([x for x, _ in data]), torch.cat([y for _, y in data]))]
    assert [len(x) for x, _ in data] == [16, 16, 5] and len(whole[0][0]) == NUM_SAMPLES
    a = CurvatureOperator(model, data, dtype=F64)
    b = CurvatureOperator(model, whole, dtype=F64)
    V = probes(a, 4)
    assert (a.matmat(V) - b.matmat(V)).abs().max() <= 1e-12


def test_dataloader_and_list_agree():
    model, data = case("mlp")
    x, y = torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH_SIZE)
    a = CurvatureOperator(model, data, dtype=F64)
    b = CurvatureOperator(model, loader, dtype=F64)
    V = probes(a)
    assert (a.matmat(V) - b.matmat(V)).abs().max() <= 1e-14


def test_eval_mode_uses_running_statistics_and_restores_flags():
    model, data = case("cnn")
    model.train()
    model.conv.eval()  # a submodule's own flag must come back too
    H_eval = dense_hessian(model, data)  # the oracle computes in eval mode
    op = CurvatureOperator(model, data, dtype=None)
    V = probes(op)
    HV = op.matmat(V)
    assert model.training and model.bn.training and not model.conv.training
    assert (HV - H_eval @ V).norm() <= 1e-5 * HV.norm()
    # with batch statistics (train mode) the Hessian would differ
    with torch.no_grad():
        model.bn.running_mean.zero_()
        model.bn.running_var.fill_(1.0)
    assert (op.matmat(V) - HV).norm() > 1e-3 * HV.norm(), "products must read the running statistics"
    assert model.bn.training


def test_l2_adds_exactly_l2_v():
    model, data = case("mlp")
    plain = CurvatureOperator(model, data, dtype=F64)
    reg = CurvatureOperator(model, data, dtype=F64, l2=0.3)
    V = probes(plain)
    assert (reg.matmat(V) - plain.matmat(V) - 0.3 * V).abs().max() <= 1e-15


def test_parameter_subsets_equal_dense_sub_blocks():
    model, data = case("cnn")
    H = dense_hessian(model, data)
    where = param_slices(model)
    names = ["bn.weight", "fc.weight", "conv.bias"]
    index = torch.cat([torch.arange(where[n].start, where[n].stop) for n in names])
    op = CurvatureOperator(model, data, dtype=F64, params=names)
    assert op.shape == (len(index), len(index))
    assert torch.allclose(dense_matrix(op), H[index][:, index], rtol=0, atol=1e-12)
    assert torch.allclose(dense_hessian(model, data, params=names), H[index][:, index], rtol=0, atol=1e-13)


def test_layer_blocks_are_the_diagonal_blocks():
    model, data = case("cnn")
    H = dense_hessian(model, data)
    where = param_slices(model)
    blocks = layer_weights(model)
    op = CurvatureOperator(model, data, dtype=F64, blocks=blocks, max_lanes=3)  # lanes split across chunks
    assert op.blocks == blocks and len(op.segments) == 2
    M = dense_matrix(op, chunk=7)
    expected = torch.block_diag(*[H[where[n], where[n]] for n in blocks])
    assert torch.allclose(M, expected, rtol=0, atol=1e-12)


def test_shift():
    model, data = case("mlp")
    H = CurvatureOperator(model, data, dtype=F64)
    V = probes(H)
    from hessian_spectra.curvature import ShiftedOperator

    assert torch.allclose(ShiftedOperator(H, -2.0).matmat(V), H.matmat(V) - 2.0 * V, rtol=0, atol=1e-15)


def test_ggn_equals_hessian_and_closed_form_for_linear_regression():
    """Linear model z = W x, loss = mean over samples and outputs of (z - t)^2 (``F.mse_loss``), so
    L = (1/(N c)) sum_i ||W x_i - t_i||^2 and H = GGN = (2/c) * kron(I_c, X^T X / N) for row-major vec(W):
    the MSE constant is 2/c."""
    gen = torch.Generator().manual_seed(3)
    d, c = 5, 3
    x, t = torch.randn(NUM_SAMPLES, d, generator=gen), torch.randn(NUM_SAMPLES, c, generator=gen)
    data = make_batches(x, t, BATCH_SIZE)
    model = nn.Linear(d, c, bias=False)
    mse = nn.functional.mse_loss
    H = dense_matrix(CurvatureOperator(model, data, loss_fn=mse, dtype=F64))
    G = dense_matrix(CurvatureOperator(model, data, loss_fn=mse, dtype=F64, curvature="ggn"))
    X = x.to(F64)
    closed = (2.0 / c) * torch.kron(torch.eye(c, dtype=F64), X.T @ X / NUM_SAMPLES)
    assert torch.allclose(H, closed, rtol=0, atol=1e-13)
    assert torch.allclose(G, closed, rtol=0, atol=1e-13)


class _TanhNoJvp(torch.autograd.Function):
    """tanh with a (twice differentiable) backward but no forward-mode rule and no vmap rule."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1 - torch.tanh(x) ** 2)


class _NoJvpMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 5), nn.Linear(5, 4)

    def forward(self, x):
        return self.b(_TanhNoJvp.apply(self.a(x)))


def test_default_products_need_no_forward_mode():
    """The default (cached double-backward) products use reverse mode only: no fallback is needed."""
    torch.manual_seed(0)
    model, data = _NoJvpMLP(), vector_data()
    with pytest.raises(Exception):
        CurvatureOperator(model, data, dtype=F64, mode="forward")
    op = CurvatureOperator(model, data, dtype=F64)
    assert op.mode == "cached"
    V = probes(op)
    H = dense_hessian(model, data)
    assert torch.allclose(op.matmat(V), H @ V, rtol=0, atol=1e-12)


class _AlwaysDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 4)

    def forward(self, x):
        return self.b(nn.functional.dropout(torch.tanh(self.a(x)), 0.5, training=True))


@pytest.mark.parametrize("mode", ["forward", "double_backward"])
def test_determinism_check_catches_dropout(mode):
    torch.manual_seed(0)
    with pytest.raises(NondeterminismError, match="model is not deterministic.*dropout"):
        CurvatureOperator(_AlwaysDropout(), vector_data(), mode=mode)


class _AugmentingLoader:
    """Re-iterable batches with fresh random noise on every pass (random augmentation)."""

    def __init__(self, data):
        self.data = data

    def __iter__(self):
        for x, y in self.data:
            yield x + 0.1 * torch.randn_like(x), y


def test_determinism_check_catches_random_augmentation():
    model = mlp()
    with pytest.raises(NondeterminismError, match="data are not deterministic.*augment"):
        CurvatureOperator(model, _AugmentingLoader(vector_data()))
    CurvatureOperator(model, _AugmentingLoader(vector_data()), check_determinism=False)  # allowed when asked


def test_rejects_bad_arguments():
    model, data = case("mlp")
    with pytest.raises(ValueError, match="unknown parameter"):
        CurvatureOperator(model, data, params=["nope.weight"])
    with pytest.raises(ValueError, match="curvature"):
        CurvatureOperator(model, data, curvature="fisher")
    op = CurvatureOperator(model, data)
    with pytest.raises(ValueError, match="float64"):
        op.matmat(torch.zeros(op.shape[0], 1))


def test_image_cnn_case_has_batchnorm():
    assert any(isinstance(m, nn.BatchNorm2d) for m in cnn().modules())
    assert [len(x) for x, _ in image_data()] == [16, 16, 5]


def test_double_backward_handles_gradients_constant_in_a_parameter():
    """A loss linear in the outputs has a constant bias gradient; double-backward must treat it as zero curvature."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 3, (10,))
    weights = torch.randn(10, 3, dtype=torch.float64)

    def linear_in_outputs(out, target):
        return (out * weights[: len(out)]).sum(1).mean()

    data = [(x, y)]
    forward = CurvatureOperator(model, data, loss_fn=linear_in_outputs, mode="forward")
    backward = CurvatureOperator(model, data, loss_fn=linear_in_outputs, mode="double_backward")
    V = torch.randn(forward.shape[0], 3, dtype=torch.float64)
    torch.testing.assert_close(backward.matmat(V), forward.matmat(V), rtol=1e-10, atol=1e-12)
