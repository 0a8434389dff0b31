"""Cached products (the default): equal to the recomputing kinds, kept under the memory budget, rebuilt when the
model changes, and built once per batch for a whole algorithm run."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from curvature_cases import case, layer_weights, vector_data
from hessian_spectra.curvature import CurvatureOperator, NondeterminismError, lanczos, random_probes, slq
from hessian_spectra.curvature.cached import AffineBatchNorm, CachedHessian, affine_batch_norm

F64 = torch.float64
UNLIMITED = 2**40


def layouts(model: nn.Module) -> dict[str, dict]:
    return {
        "full": {},
        "blocks": {"blocks": layer_weights(model), "max_lanes": 3},
        "subset": {"params": [name for name, _ in model.named_parameters()][1::2]},
    }


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
@pytest.mark.parametrize("layout", ["full", "blocks", "subset"])
def test_cached_products_equal_the_recomputing_kinds(name, curvature, layout):
    model, data = case(name)  # the cnn has BatchNorm with running statistics (eval mode)
    options = dict(dtype=F64, curvature=curvature, l2=0.1, **layouts(model)[layout])
    cached = CurvatureOperator(model, data, **options)
    assert cached.mode == "cached"
    V = random_probes(cached, 5, "gaussian", 0)
    first, again = cached.matmat(V), cached.matmat(V)
    assert sorted(cached.cache.sizes) == [0, 1, 2], "every batch fits the default budget"
    assert torch.equal(first, again)
    for mode in ("forward", "double_backward"):
        other = CurvatureOperator(model, data, mode=mode, **options).matmat(V)
        assert relative_gap(first, other) <= 1e-12, mode


@pytest.mark.parametrize("shape", [(7, 3), (7, 3, 5), (7, 3, 4, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_affine_batch_norm_is_batch_norm_in_eval_mode(shape, affine):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen, dtype=F64)
    mean, var = torch.randn(3, generator=gen, dtype=F64), torch.rand(3, generator=gen, dtype=F64) + 0.5
    weight, bias = (torch.randn(3, generator=gen, dtype=F64) for _ in range(2)) if affine else (None, None)
    expected = nn.functional.batch_norm(x, mean, var, weight, bias, False, 0.1, 1e-3)
    got = affine_batch_norm(x, mean, var, weight, bias, False, 0.1, 1e-3)
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=1e-14)
    bn = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(3, affine=affine).to(F64)
    with AffineBatchNorm():
        training = bn(x)  # batch statistics: F.batch_norm itself
        bn.eval()
        inference = bn(x)
    assert torch.equal(training, nn.functional.batch_norm(x, None, None, bn.weight, bn.bias, True))
    assert torch.equal(inference, affine_batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias))


def test_single_probe_equals_batched_probes():
    model, data = case("cnn")
    op = CurvatureOperator(model, data, dtype=F64)
    V = random_probes(op, 3, "gaussian", 1)
    columns = torch.cat([op.matmat(V[:, i : i + 1]) for i in range(3)], dim=1)
    assert relative_gap(columns, op.matmat(V)) <= 1e-13


def test_budget_keeps_exactly_the_batches_that_fit():
    model, data = case("cnn")  # batches of 16, 16 and 5 samples
    unlimited = CurvatureOperator(model, data, dtype=F64, memory_budget=UNLIMITED)
    V = random_probes(unlimited, 4, "gaussian", 0)
    expected = unlimited.matmat(V)
    sizes = unlimited.cache.sizes
    assert sizes[0] == sizes[1] > sizes[2] > 0
    partial = CurvatureOperator(model, data, dtype=F64, memory_budget=sizes[0] + sizes[2])
    assert torch.equal(partial.matmat(V), expected)
    assert partial.cache.sizes == {0: sizes[0], 2: sizes[2]}
    assert partial.cache.used <= partial.cache.budget
    none = CurvatureOperator(model, data, dtype=F64, memory_budget=0)
    assert relative_gap(none.matmat(V), expected) <= 1e-14
    assert none.matmat(V).shape == V.shape and none.cache.sizes == {}


def test_default_budget_is_a_fraction_of_available_memory():
    model, data = case("mlp")
    op = CurvatureOperator(model, data)
    assert op.cache.budget is None  # resolved when the first graph is offered
    op.matmat(random_probes(op, 1, "gaussian", 0))
    assert 0 < op.cache.budget and op.cache.used <= op.cache.budget
    with pytest.raises(ValueError, match="memory_budget"):
        CurvatureOperator(model, data, memory_budget=-1)


def test_the_process_default_budget_is_the_runtime_flag(monkeypatch):
    """`--memory-budget-mb` (the config's `memory_budget_mb`) is the budget of every operator built without one."""
    import argparse

    from hessian_spectra.curvature import cache
    from hessian_spectra.runtime import add_runtime_arguments, setup_runtime

    monkeypatch.setattr(cache, "_default_budget", None)
    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser)
    setup_runtime(parser.parse_args(["--memory-budget-mb", "0"]))
    model, data = case("mlp")
    op = CurvatureOperator(model, data, dtype=F64)
    op.matmat(random_probes(op, 1, "gaussian", 0))
    assert op.cache.budget == 0 and op.cache.sizes == {}
    setup_runtime(parser.parse_args(["--memory-budget-mb", "1.5"]))
    assert CurvatureOperator(model, data).cache.budget == int(1.5 * 2**20)
    assert CurvatureOperator(model, data, memory_budget=7).cache.budget == 7


def test_the_product_mode_is_explicit_not_a_process_default():
    """`--products` (the config's `products`) sets no process state: a command passes it to its operators, and an
    operator built without ``mode`` is cached whatever a command line said before."""
    import argparse

    from hessian_spectra import runtime
    from hessian_spectra.curvature.products import ForwardHessian

    parser = argparse.ArgumentParser()
    runtime.add_runtime_arguments(parser)
    assert parser.parse_args([]).products == "cached"
    args = parser.parse_args(["--products", "forward"])
    runtime.setup_runtime(args)
    model, data = case("mlp")
    cached = CurvatureOperator(model, data, dtype=F64)
    assert cached.mode == "cached"
    forward = CurvatureOperator(model, data, dtype=F64, mode=args.products)
    assert forward.mode == "forward" and isinstance(forward._kind, ForwardHessian)
    V = random_probes(cached, 5, "gaussian", 0)
    assert relative_gap(forward.matmat(V), cached.matmat(V)) <= 1e-12
    assert forward.cache.sizes == {}
    with pytest.raises(ValueError, match="mode must be one of"):
        CurvatureOperator(model, data, mode="reverse")


def _count_builds(monkeypatch) -> list:
    builds = []
    prepare = CachedHessian.prepare

    def counting(self, x, y):
        builds.append(len(x))
        return prepare(self, x, y)

    monkeypatch.setattr(CachedHessian, "prepare", counting)
    return builds


def test_an_algorithm_run_builds_each_graph_once(monkeypatch):
    model, data = case("cnn")
    op = CurvatureOperator(model, data, dtype=F64, blocks=layer_weights(model), check_determinism=False)
    builds = _count_builds(monkeypatch)
    lanczos(op, k=2, tol=1e-8)
    slq(op, num_probes=2, num_steps=6)
    assert builds == [16, 16, 5], "one graph per batch, shared by all blocks and all products"


def test_cached_and_uncached_lanczos_agree():
    model, data = case("cnn")
    cached = lanczos(CurvatureOperator(model, data, dtype=F64), k=4, tol=1e-10)
    uncached = lanczos(CurvatureOperator(model, data, dtype=F64, memory_budget=0), k=4, tol=1e-10)
    forward = lanczos(CurvatureOperator(model, data, dtype=F64, mode="forward"), k=4, tol=1e-10)
    assert cached.steps == uncached.steps == forward.steps
    np.testing.assert_allclose(cached.eigenvalues, uncached.eigenvalues, rtol=1e-12, atol=0)
    np.testing.assert_allclose(cached.eigenvalues, forward.eigenvalues, rtol=1e-10, atol=0)


@pytest.mark.parametrize("change", ["optimizer step", "new tensor", "buffer"])
def test_a_changed_model_invalidates_the_cache(change, monkeypatch):
    model, data = case("cnn")
    op = CurvatureOperator(model, data)  # float32, no copy: the operator sees the live model
    V = random_probes(op, 2, "gaussian", 0)
    before = op.matmat(V)
    if change == "optimizer step":
        model.zero_grad()
        nn.functional.cross_entropy(model(data[0][0]), data[0][1]).backward()
        torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9).step()
    elif change == "new tensor":
        model.fc.weight = nn.Parameter(2 * model.fc.weight.detach())
    else:
        with torch.no_grad():
            model.bn.running_var.mul_(3.0)
    builds = _count_builds(monkeypatch)
    after = op.matmat(V)
    assert builds == [16, 16, 5], "every graph was rebuilt"
    fresh = CurvatureOperator(model, data, mode="forward").matmat(V)
    assert relative_gap(after, fresh) <= 1e-5 and relative_gap(after, before) > 1e-3


def test_a_loader_is_reread_and_not_cached():
    model, data = case("mlp")
    x, y = torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    op = CurvatureOperator(model, loader, dtype=F64)
    V = random_probes(op, 2, "gaussian", 0)
    assert relative_gap(op.matmat(V), CurvatureOperator(model, data, dtype=F64).matmat(V)) <= 1e-14
    assert op.cache.sizes == {}


class _Dropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 4)

    def forward(self, x):
        return self.b(nn.functional.dropout(torch.tanh(self.a(x)), 0.5, training=True))


def test_determinism_check_builds_two_graphs():
    """A kept graph would repeat its dropout mask: the check compares two independently built ones."""
    torch.manual_seed(0)
    with pytest.raises(NondeterminismError, match="model is not deterministic"):
        CurvatureOperator(_Dropout(), vector_data(), mode="cached")


class _TanhOnceDifferentiable(torch.autograd.Function):
    """tanh whose backward cannot be differentiated again."""

    @staticmethod
    def forward(ctx, x):
        out = torch.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out**2)


class _OnceDifferentiableMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 5), nn.Linear(5, 4)

    def forward(self, x):
        return self.b(_TanhOnceDifferentiable.apply(self.a(x)))


@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
@pytest.mark.parametrize("mode", ["cached", "double_backward"])
def test_once_differentiable_functions_are_refused(curvature, mode):
    """autograd.grad w.r.t. the parameters would skip the function's error node and drop its curvature."""
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        CurvatureOperator(_OnceDifferentiableMLP(), vector_data(), curvature=curvature, mode=mode)
