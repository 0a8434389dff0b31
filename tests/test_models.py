"""The model zoo: hand-computed parameter counts, layer blocks, init, and torch.func compatibility."""

from __future__ import annotations

import functools
import math
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap
from torch.nn import functional as F

from hessian_spectra.models import build_model, layer_block_count, layer_blocks
from hessian_spectra.models.catalog import MLP_HIDDEN, MODEL_NAMES, MODEL_OPTIONS

NATIVE = {
    "lenet": (1, 32, 10),
    "vgg11_bn": (3, 32, 10),
    "resnet18": (3, 32, 10),
    "tf_cnn": (3, 32, 10),
    "simple_cnn_medium": (3, 32, 10),
    "resnet32_nobn": (3, 32, 10),
    "c1": (3, 32, 10),
    "resnet20": (3, 32, 10),
    "mlp": (1, 28, 10),
}
CONV_MODELS = [name for name in MODEL_NAMES if name != "mlp"]


def conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def dense(fan_in: int, fan_out: int, bias: bool = True) -> int:
    return fan_in * fan_out + (fan_out if bias else 0)


def bn(channels: int) -> int:
    return 2 * channels  # weight and bias; running statistics are buffers


def basic_block(cin: int, cout: int) -> int:
    """conv3x3-BN-conv3x3-BN, plus a Conv1x1+BN shortcut when the channels change (BN ResNets, no conv bias)."""
    body = conv(cin, cout, 3, bias=False) + bn(cout) + conv(cout, cout, 3, bias=False) + bn(cout)
    return body + (conv(cin, cout, 1, bias=False) + bn(cout) if cin != cout else 0)


def preact_block(cin: int, cout: int) -> int:
    """conv3x3 + conv3x3 with biases, plus a biased Conv1x1 shortcut when the channels change (no BN)."""
    return conv(cin, cout, 3) + conv(cout, cout, 3) + (conv(cin, cout, 1) if cin != cout else 0)


# Spatial sizes at 32x32 are written next to each flatten; every count is for the native input in NATIVE.
HAND_COUNTS = {
    # 32 -conv5-> 28 -pool-> 14 -conv5-> 10 -pool-> 5
    "lenet": conv(1, 6, 5) + conv(6, 16, 5) + dense(16 * 5 * 5, 120) + dense(120, 84) + dense(84, 10),
    # five max-pools: 32 -> 1
    "vgg11_bn": (
        conv(3, 64, 3) + bn(64)
        + conv(64, 128, 3) + bn(128)
        + conv(128, 256, 3) + bn(256)
        + conv(256, 256, 3) + bn(256)
        + conv(256, 512, 3) + bn(512)
        + conv(512, 512, 3) + bn(512)
        + conv(512, 512, 3) + bn(512)
        + conv(512, 512, 3) + bn(512)
        + dense(512 * 1 * 1, 4096, bias=False) + bn(4096)
        + dense(4096, 4096) + bn(4096)
        + dense(4096, 10)
    ),
    "resnet18": (
        conv(3, 64, 3, bias=False) + bn(64)
        + basic_block(64, 64) + basic_block(64, 64)
        + basic_block(64, 128) + basic_block(128, 128)
        + basic_block(128, 256) + basic_block(256, 256)
        + basic_block(256, 512) + basic_block(512, 512)
        + dense(512, 10)
    ),
    # 32 -conv3-> 30 -conv3-> 28 -pool-> 14 -conv3-> 12 -conv3-> 10 -pool-> 5
    "tf_cnn": (
        conv(3, 64, 3) + conv(64, 64, 3) + conv(64, 128, 3) + conv(128, 128, 3)
        + dense(128 * 5 * 5, 256) + dense(256, 256) + dense(256, 10)
    ),
    # 32 -same-> 32 -valid5-> 28 -pool-> 14 -same-> 14 -valid5-> 10 -pool-> 5
    "simple_cnn_medium": (
        conv(3, 100, 5) + conv(100, 100, 5) + conv(100, 200, 5) + conv(200, 200, 5)
        + dense(200 * 5 * 5, 128) + dense(128, 10)
    ),
    "resnet32_nobn": (
        conv(3, 16, 3)
        + 5 * preact_block(16, 16)
        + preact_block(16, 32) + 4 * preact_block(32, 32)
        + preact_block(32, 64) + 4 * preact_block(64, 64)
        + dense(64, 10)
    ),
    # 32 -pool(3,2,1)-> 16 -pool(3,2,1)-> 8
    "c1": (
        conv(3, 64, 5) + bn(64) + conv(64, 64, 5) + bn(64)
        + dense(64 * 8 * 8, 384) + dense(384, 192) + dense(192, 10)
    ),
    "resnet20": (
        conv(3, 16, 3, bias=False) + bn(16)
        + 3 * basic_block(16, 16)
        + basic_block(16, 32) + 2 * basic_block(32, 32)
        + basic_block(32, 64) + 2 * basic_block(64, 64)
        + dense(64, 10)
    ),
    "mlp": dense(28 * 28, 30) + dense(30, 30) + dense(30, 10),
}


@functools.lru_cache(maxsize=None)
def native_model(name: str) -> nn.Module:
    """Each model at full width on its native input, seeded; cached (tests below do not change weights)."""
    torch.manual_seed(0)
    return build_model(name, *NATIVE[name])


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def images(
    batch: int, shape: tuple[int, int, int], dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random batch of images and labels for an (in_channels, image_size, num_classes) input."""
    gen = torch.Generator().manual_seed(1)
    channels, size, classes = shape
    x = torch.randn(batch, channels, size, size, generator=gen, dtype=dtype)
    y = torch.randint(0, classes, (batch,), generator=gen)
    return x, y


def test_catalog_is_consistent() -> None:
    assert set(MODEL_NAMES) == set(NATIVE) == set(MODEL_OPTIONS)
    assert all(layer_block_count(name) > 0 for name in MODEL_NAMES)
    assert all("width" in options for options in MODEL_OPTIONS.values())


def test_catalog_and_package_import_without_torch() -> None:
    code = (
        "import sys; import hessian_spectra.models, hessian_spectra.models.catalog; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_count_matches_hand_count(name: str) -> None:
    assert n_params(native_model(name)) == HAND_COUNTS[name]


def test_published_totals() -> None:
    assert HAND_COUNTS["lenet"] == 61_706
    assert HAND_COUNTS["resnet18"] == 11_173_962
    assert 28 * 28 * 30 == 23_520 == native_model("mlp").dense1.weight.numel()


@pytest.mark.parametrize(
    "name, options",
    [(name, {}) for name in MODEL_NAMES] + [("mlp", {"hidden": [10]}), ("mlp", {"hidden": [10, 20, 30]})],
    ids=[*MODEL_NAMES, "mlp-hidden10", "mlp-hidden10-20-30"],
)
def test_layer_block_count_is_the_built_models_number_of_layer_blocks(name: str, options: dict) -> None:
    torch.manual_seed(0)
    assert layer_block_count(name, options) == len(layer_blocks(build_model(name, *NATIVE[name], **options)))


def test_mlp_layer_block_count_follows_its_hidden_widths() -> None:
    assert layer_block_count("mlp") == layer_block_count("mlp", {}) == len(MLP_HIDDEN) + 1 == 3
    assert [layer_block_count("mlp", {"hidden": h}) for h in ([], [10], [10, 20, 30])] == [1, 2, 4]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_layer_blocks_are_conv_and_linear_weights_in_forward_order(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, *NATIVE[name], width=0.25)
    blocks = layer_blocks(model)
    assert len(blocks) == layer_block_count(name, {"width": 0.25})
    params = dict(model.named_parameters())
    weights = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert {id(params[b]) for b in blocks} == weights
    assert len(set(blocks)) == len(blocks)

    called: list[str] = []
    names = {module: name for name, module in model.named_modules()}
    hooks = [
        m.register_forward_hook(lambda mod, *_: called.append(f"{names[mod]}.weight"))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    model.eval()
    with torch.no_grad():
        model(images(2, NATIVE[name])[0])
    for hook in hooks:
        hook.remove()
    assert called == blocks


# the layer names of saved checkpoints (state_dict keys): a model built now must load them
SEQUENTIAL_LAYERS = {
    "lenet": "conv1 relu1 pool1 conv2 relu2 pool2 flatten fc1 relu3 fc2 relu4 fc3",
    "tf_cnn": "conv1 relu1 conv2 relu2 pool1 conv3 relu3 conv4 relu4 pool2 flatten dense1 relu5 dense2 relu6 dense3",
    "simple_cnn_medium": "conv1 relu1 conv2 relu2 pool1 conv3 relu3 conv4 relu4 pool2 flatten dense1 relu5 dense2",
    "c1": "conv1 relu1 bn1 pool1 conv2 relu2 bn2 pool2 flatten linear1 relu3 linear2 relu4 linear3",
    "mlp": "flatten dense1 act1 dense2 act2 dense3",
}
RESNET_KEYS = {
    "resnet18": ("bn1.running_mean", "layers.1.0.shortcut.1.weight", "layers.3.1.conv2.weight", "linear.bias"),
    "resnet20": ("conv1.weight", "layers.2.0.shortcut.0.weight", "layers.2.2.bn2.bias", "linear.weight"),
    "resnet32_nobn": ("conv1.bias", "layers.1.0.shortcut.weight", "layers.2.4.conv2.bias", "dense.weight"),
}


@pytest.mark.parametrize("name", SEQUENTIAL_LAYERS)
def test_sequential_models_keep_their_layer_names(name: str) -> None:
    assert " ".join(child for child, _ in native_model(name).named_children()) == SEQUENTIAL_LAYERS[name]


@pytest.mark.parametrize("name", RESNET_KEYS)
def test_resnets_keep_their_state_dict_keys(name: str) -> None:
    assert set(RESNET_KEYS[name]) <= set(native_model(name).state_dict())


def _forward_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.train()
    model.zero_grad()
    out = model(x)
    assert out.shape == (x.shape[0], 10)
    loss = F.cross_entropy(out, y)
    assert torch.isfinite(loss)
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_native(name: str) -> None:
    model = native_model(name)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    _forward_backward(model, *images(4, NATIVE[name]))
    model.load_state_dict(state)  # restore BN running statistics for the other tests using the cached model


@pytest.mark.parametrize("name", CONV_MODELS)
def test_conv_models_on_digits_at_quarter_width(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 1, 32, 10, width=0.25)
    assert n_params(model) < n_params(native_model(name))
    _forward_backward(model, *images(4, (1, 32, 10)))


@pytest.mark.parametrize("activation", ["relu", "tanh", "linear"])
def test_mlp_activations(activation: str) -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 1, 28, 10, activation=activation)
    kinds = {"relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity}
    assert isinstance(model.act1, kinds[activation]) and isinstance(model.act2, kinds[activation])
    _forward_backward(model, *images(4, (1, 28, 10)))


def test_mlp_hidden_and_width() -> None:
    model = build_model("mlp", 1, 8, 3, hidden=[7, 5, 4], width=0.5)
    assert [model.get_submodule(b.removesuffix(".weight")).out_features for b in layer_blocks(model)] == [4, 2, 2, 3]
    assert build_model("mlp", 1, 8, 3, width=0.001).dense1.out_features == 1  # max(1, round(30 * 0.001))


def test_width_scales_hidden_units_not_classes() -> None:
    model = build_model("lenet", 1, 32, 7, width=0.5)
    assert [model.conv1.out_channels, model.conv2.out_channels] == [3, 8]
    assert [model.fc1.out_features, model.fc2.out_features, model.fc3.out_features] == [60, 42, 7]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_construction_is_deterministic_given_seed(name: str) -> None:
    def build(seed: int) -> dict:
        torch.manual_seed(seed)
        return build_model(name, *NATIVE[name], width=0.125).state_dict()

    first, again, other = build(3), build(3), build(4)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_torch_func_hvp_matches_double_backward(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, *NATIVE[name], width=0.125).double().eval()
    x, y = images(3, NATIVE[name], dtype=torch.float64)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss_of(p: dict) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, {**p, **buffers}, (x,)), y)

    def hvp(v: dict) -> dict:
        return jvp(grad(loss_of), (params,), (v,))[1]

    gen = torch.Generator().manual_seed(2)
    probes = {k: torch.randn(2, *p.shape, generator=gen, dtype=torch.float64) for k, p in params.items()}
    batched = vmap(hvp)(probes)

    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    grads = torch.autograd.grad(loss_of(leaves), list(leaves.values()), create_graph=True)
    for i in range(2):
        dot = sum((g * probes[k][i]).sum() for g, k in zip(grads, leaves))
        ref = torch.autograd.grad(dot, list(leaves.values()), retain_graph=True, allow_unused=True)
        ref = {k: torch.zeros_like(v) if r is None else r for (k, v), r in zip(leaves.items(), ref)}
        scale = max(r.abs().max().item() for r in ref.values())
        assert scale > 0
        for k in params:
            torch.testing.assert_close(batched[k][i], ref[k], rtol=1e-7, atol=1e-9 * scale)


def test_mlp_init_sd() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 1, 28, 10, init_sd=0.01)
    assert model.dense1.weight.std().item() == pytest.approx(0.01, rel=0.05)
    for layer in (model.dense2, model.dense3):  # Glorot-uniform
        bound = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= bound
    assert all(torch.count_nonzero(m.bias) == 0 for m in (model.dense1, model.dense2, model.dense3))


def test_resnet32_nobn_scaled_he_normal() -> None:
    model = native_model("resnet32_nobn")
    layer = model.layers[2][4].conv2  # 64 -> 64, 3x3: 36,864 weights
    fan_in = 64 * 3 * 3
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 15 / fan_in), rel=0.05)
    assert all(torch.count_nonzero(m.bias) == 0 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    torch.manual_seed(0)
    unscaled = build_model("resnet32_nobn", 3, 32, 10, init_scale=1.0).layers[2][4].conv2
    assert unscaled.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)


def test_tf_cnn_he_uniform() -> None:
    model = native_model("tf_cnn")
    for layer in (m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))):
        fan_in = layer.weight[0].numel()
        bound = math.sqrt(6 / fan_in)
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.95 * bound  # the full He range, not PyTorch's narrower default
        assert torch.count_nonzero(layer.bias) == 0


def test_simple_cnn_glorot_uniform() -> None:
    model = native_model("simple_cnn_medium")
    for layer in (m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))):
        receptive = layer.weight[0, 0].numel()
        bound = math.sqrt(6 / ((layer.weight.shape[0] + layer.weight.shape[1]) * receptive))
        assert 0.95 * bound < layer.weight.abs().max() <= bound
        assert torch.count_nonzero(layer.bias) == 0


def test_resnet20_init() -> None:
    model = native_model("resnet20")
    layer = model.layers[2][2].conv2  # 64 -> 64, 3x3
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / (3 * 3 * 64)), rel=0.05)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_unknown_model_is_rejected_with_allowed_names() -> None:
    with pytest.raises(ValueError, match="'resnet50'") as err:
        build_model("resnet50", 3, 32, 10)
    assert all(name in str(err.value) for name in MODEL_NAMES)


def test_unknown_option_is_rejected_with_allowed_options() -> None:
    with pytest.raises(ValueError, match="'depth'") as err:
        build_model("resnet20", 3, 32, 10, depth=56)
    assert "width" in str(err.value)
    with pytest.raises(ValueError, match="'init_sd'.*width"):
        build_model("lenet", 1, 32, 10, init_sd=0.1)


@pytest.mark.parametrize(
    ("name", "options", "pattern"),
    [
        ("mlp", {"activation": "gelu"}, "gelu"),
        ("mlp", {"hidden": [30, 0]}, "hidden"),
        ("mlp", {"init_sd": -1.0}, "init_sd"),
        ("lenet", {"width": 0}, "width"),
        ("resnet32_nobn", {"init_scale": 0.0}, "init_scale"),
    ],
)
def test_bad_option_values_are_rejected(name: str, options: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build_model(name, *NATIVE[name], **options)


def test_too_small_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="tf_cnn: image_size 8"):
        build_model("tf_cnn", 3, 8, 10)
