"""Curvature kinds as types: the registry agrees with the torch-free names the command line offers, the empirical
Fisher is exactly the mean of per-sample gradient outer products, and the product mode travels explicitly from each
command's `--products` to its operators."""

import copy
import csv
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import saved_model
from curvature_cases import case, layer_weights
from hessian_spectra import cli, curvature_names, runtime
from hessian_spectra.checkpoint import model_spec
from hessian_spectra.cli import command_parser
from hessian_spectra.curvature import (
    CURVATURES,
    CurvatureOperator,
    EmpiricalFisher,
    dense_hessian,
    dense_matrix,
    lanczos,
    make_batches,
    random_probes,
)
from hessian_spectra.data import save_subset
from hessian_spectra.spectrum import SpectrumRequest, compute_spectrum

F64 = torch.float64
COMPUTE_COMMANDS = ("spectrum", "sharpest-directions", "hessianflow", "init-chain-rule", "train")
WALKING_COMMANDS = (("sharpest-directions", "trajectory"), ("hessianflow", "eigen"), ("init-chain-rule", "track"))


def test_the_registry_has_exactly_the_torch_free_names():
    assert {name: kind.modes() for name, kind in CURVATURES.items()} == curvature_names.CURVATURE_MODES
    assert all(kind.name == name for name, kind in CURVATURES.items())
    assert runtime.MODES == curvature_names.MODES
    assert all(set(modes) <= set(curvature_names.MODES) for modes in curvature_names.CURVATURE_MODES.values())
    parser, _ = command_parser("spectrum", "")
    choices = {action.dest: action.choices for action in parser._actions}
    assert tuple(choices["curvature"]) == curvature_names.CURVATURES == tuple(CURVATURES)
    assert tuple(choices["products"]) == curvature_names.MODES


def test_the_compute_commands_parsers_import_no_torch():
    code = (
        "import sys; from hessian_spectra.cli import command_parser\n"
        f"for name in {COMPUTE_COMMANDS!r}: command_parser(name, '')\n"
        "assert 'torch' not in sys.modules, 'a parser imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_curvature_refuses_modes_it_has_not_and_unknown_names_are_refused():
    model, data = case("mlp")
    with pytest.raises(ValueError, match=r"mode must be one of \('cached',\) for curvature empirical_fisher"):
        CurvatureOperator(model, data, curvature="empirical_fisher", mode="forward")
    with pytest.raises(ValueError, match="curvature must be one of"):
        CurvatureOperator(model, data, curvature="fisher")
    with pytest.raises(ValueError, match="curvature must be one of"):
        dense_hessian(model, data, curvature="fisher")
    with pytest.raises(ValueError, match="mode must be one of"):
        SpectrumRequest(curvature="empirical_fisher", products="double_backward")


def explicit_empirical_fisher(model: nn.Module, data: list, names: list[str]) -> torch.Tensor:
    """(1/N) sum_i g_i g_i^T, each g_i from ``torch.autograd.grad`` of sample i's loss alone, in float64 eval mode."""
    model = copy.deepcopy(model).to(F64).eval()
    named = dict(model.named_parameters())
    leaves = [named[name] for name in names]
    gradients = []
    for x, y in data:
        for xi, yi in zip(x.to(F64), y):
            loss = F.cross_entropy(model(xi.unsqueeze(0)), yi.unsqueeze(0))
            gradients.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, leaves)]))
    return sum(torch.outer(g, g) for g in gradients) / len(gradients)


def block_diagonal(matrix: torch.Tensor, model: nn.Module, blocks: list[str]) -> torch.Tensor:
    sizes = [dict(model.named_parameters())[name].numel() for name in blocks]
    return torch.block_diag(*(part.split(sizes, 1)[i] for i, part in enumerate(matrix.split(sizes, 0))))


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("name", ["mlp", "cnn"])  # the cnn has BatchNorm with running statistics (eval mode)
@pytest.mark.parametrize("layout", ["full", "blocks", "subset"])
def test_the_empirical_fisher_is_the_mean_of_per_sample_gradient_outer_products(name, layout):
    model, data = case(name)  # batches of 16, 16 and 5: the weights n_b / N matter
    every = [n for n, _ in model.named_parameters()]
    options = {"full": {}, "blocks": {"blocks": layer_weights(model), "max_lanes": 3},
               "subset": {"params": every[1::2]}}[layout]
    names = options.get("blocks") or options.get("params") or every
    explicit = explicit_empirical_fisher(model, data, names)
    if layout == "blocks":
        explicit = block_diagonal(explicit, model, names)
    op = CurvatureOperator(model, data, dtype=F64, curvature="empirical_fisher", l2=0.1, **options)
    eye = torch.eye(op.shape[0], dtype=F64)
    assert relative_gap(dense_matrix(op), explicit + 0.1 * eye) <= 1e-12
    if layout != "blocks":
        oracle = dense_hessian(model, data, params=names, curvature="empirical_fisher")
        assert relative_gap(oracle, explicit) <= 1e-12
    single = CurvatureOperator(model, data, curvature="empirical_fisher", **options)  # the model's float32
    assert relative_gap(dense_matrix(single), explicit) <= 1e-5


def test_the_empirical_fisher_keeps_per_sample_gradients_under_the_budget():
    model, data = case("mlp")
    op = CurvatureOperator(model, data, curvature="empirical_fisher")  # the model's float32: products see it change
    V = random_probes(op, 4, "gaussian", 0)
    kept = op.matmat(V)
    n = op.shape[0]
    assert op.cache.sizes == {0: 16 * n * 4, 1: 16 * n * 4, 2: 5 * n * 4}, "one (n_b, n) float32 matrix per batch"
    assert torch.equal(op.matmat(V), kept)
    none = CurvatureOperator(model, data, curvature="empirical_fisher", memory_budget=0)
    assert torch.equal(none.matmat(V), kept) and none.cache.sizes == {}
    with torch.no_grad():
        model[0].weight.mul_(1.5)
    assert torch.equal(op.matmat(V), none.matmat(V)), "a changed model invalidates the kept gradients"
    assert relative_gap(op.matmat(V), kept) > 1e-3


@pytest.fixture
def spectrum_files(tmp_path):
    torch.manual_seed(0)
    model = saved_model(model_spec("mlp", 1, 4, 3, {"hidden": [5], "activation": "tanh"}), tmp_path / "ckpt.pt", 7)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(37, 1, 4, 4, generator=gen), torch.randint(0, 3, (37,), generator=gen)
    save_subset(tmp_path / "subset.pt", x, y, torch.arange(37), {"split": "test"})
    return tmp_path, model, make_batches(x, y, 16)


def spectrum(tmp_path, *extra) -> int:
    return cli.main(["spectrum", "--checkpoint", str(tmp_path / "ckpt.pt"), "--data", str(tmp_path / "subset.pt"),
                     "--out", str(tmp_path / "table.tsv"), "--batch-size", "16", *extra])


def eigenvalue_rows(path) -> list[dict]:
    with open(path) as handle:
        return [r for r in csv.DictReader(handle, delimiter="\t") if r["quantity"] == "eigenvalue"]


def test_the_spectrum_command_computes_the_empirical_fisher(spectrum_files):
    tmp_path, model, batches = spectrum_files
    exact = torch.linalg.eigvalsh(dense_hessian(model, batches, curvature="empirical_fisher")).flip(0)
    assert spectrum(tmp_path, "--curvature", "empirical_fisher", "--top-k", "3", "--tol", "1e-10",
                    "--dtype", "float64") == 0
    top = eigenvalue_rows(tmp_path / "table.tsv")
    assert [r["converged"] for r in top] == ["true"] * 3
    for row, value in zip(top, exact[:3].tolist()):
        assert abs(float(row["value"]) - value) <= 1e-8 * exact[0]
    assert spectrum(tmp_path, "--curvature", "empirical_fisher", "--dense", "--dtype", "float64") == 0
    dense = [float(r["value"]) for r in eigenvalue_rows(tmp_path / "table.tsv")]
    assert max(abs(a - b) for a, b in zip(dense, exact.tolist())) <= 1e-12 * exact[0]


def test_the_spectrum_command_refuses_a_mode_the_curvature_has_not(spectrum_files, caplog):
    tmp_path, _, _ = spectrum_files
    assert spectrum(tmp_path, "--curvature", "empirical_fisher", "--products", "forward", "--top-k", "1") == 2
    assert "mode must be one of ('cached',) for curvature empirical_fisher, got 'forward'" in caplog.text
    assert not (tmp_path / "table.tsv").exists()


class RecordedOperator(CurvatureOperator):
    """A ``CurvatureOperator`` that records the mode of every instance."""

    modes: list[str] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        RecordedOperator.modes.append(self.mode)


@pytest.fixture
def recorded(monkeypatch):
    """Every operator built by the spectrum, chain-rule and training code records its mode in the returned list."""
    from hessian_spectra import chain_rule, spectrum
    from hessian_spectra.train import absa, nsgd

    RecordedOperator.modes = []
    for module in (spectrum, chain_rule, nsgd, absa):
        monkeypatch.setattr(module, "CurvatureOperator", RecordedOperator)
    return RecordedOperator.modes


def test_each_command_passes_its_products_flag_to_its_operators(spectrum_files, monkeypatch, recorded):
    tmp_path, _, _ = spectrum_files
    assert spectrum(tmp_path, "--products", "forward", "--top-k", "1", "--layers") == 0
    assert recorded == ["forward", "forward"], "the full and the layer-block operator"
    (tmp_path / "run.json").write_text(json.dumps({"key": "r", "l2": 0.0, "seed": 0, "model_options": {}}))
    walk = ["--run-json", str(tmp_path / "run.json"), "--checkpoints", str(tmp_path / "ckpt.pt"),
            "--subset", str(tmp_path / "subset.pt"), "--out", str(tmp_path / "t.tsv"), "--products", "forward"]
    products = []  # of the request each walking command hands on

    def walk_checkpoints(checkpoints, out, columns, settings, measure):
        products.append(settings["request"]["products"])

    monkeypatch.setattr("hessian_spectra.spectrum.checkpoint_spectra", lambda *a: products.append(a[2].products))
    monkeypatch.setattr("hessian_spectra.walk.walk_checkpoints", walk_checkpoints)
    for command in WALKING_COMMANDS:
        assert cli.main([*command, *walk]) == 0
    assert products == ["forward"] * 3
    trained = []
    monkeypatch.setattr("hessian_spectra.train.loop.train_run", lambda *a, **kw: trained.append(kw["products"]))
    assert cli.main(["train", "--run", "{}", "--out-dir", str(tmp_path / "run"), "--products", "double_backward"]) == 0
    assert trained == ["double_backward"]


def test_the_library_passes_each_requests_products_to_its_operators(recorded):
    from hessian_spectra.chain_rule import TrackingRequest, track_checkpoint
    from hessian_spectra.train.absa import ABSAStrategy
    from hessian_spectra.train.nsgd import NSGDStrategy
    from hessian_spectra.train.strategies import TrainContext

    model, data = case("mlp")
    compute_spectrum(model, data, SpectrumRequest(top_k=1, products="double_backward"))
    track_checkpoint(model, data, TrackingRequest(block="0.weight", frobenius_probes=2, products="forward"))
    assert recorded == ["double_backward"] + ["forward"] * 6, "spectrum; H, G and H - G of the block and in full"
    x, y = torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data])
    run = {"key": "t", "seed": 0, "lr": 0.1, "momentum": 0.0, "l2": 0.0, "batch_size": 8, "epochs": 2}

    def context(optimizer: dict, products: str) -> TrainContext:
        return TrainContext(run={**run, "optimizer": optimizer}, device=torch.device("cpu"), loss_fn=F.cross_entropy,
                            subset=(x, y), train_data=(x, y), products=products)

    recorded.clear()
    NSGDStrategy(context({"name": "nsgd", "gamma": 0.1, "kk": 2}, "forward"), model).on_epoch_start(1)
    assert recorded == ["forward"]
    recorded.clear()
    ABSAStrategy(context({"name": "absa", "eig_batch": 16}, "double_backward"), model).dominant_eigenvalue(1)
    assert recorded == ["double_backward"]


def test_lanczos_on_the_empirical_fisher_finds_its_top_eigenvalues():
    model, data = case("cnn")
    op = CurvatureOperator(model, data, dtype=F64, curvature=EmpiricalFisher.name)
    exact = torch.linalg.eigvalsh(dense_hessian(model, data, curvature="empirical_fisher")).flip(0)
    result = lanczos(op, k=3, tol=1e-10)
    assert torch.allclose(torch.as_tensor(result.eigenvalues), exact[:3], rtol=1e-9, atol=0)
