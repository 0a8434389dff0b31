"""Names, layer-block counts and allowed options of the model zoo.

Torch-free: the Snakefile imports it at parse time to check configs before any job runs.
"""

from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = (
    "lenet",
    "vgg11_bn",
    "resnet18",
    "tf_cnn",
    "simple_cnn_medium",
    "resnet32_nobn",
    "c1",
    "resnet20",
    "mlp",
)

# len(layer_blocks(model)) of the architectures whose depth no option changes
_FIXED_LAYER_BLOCKS: dict[str, int] = {
    "lenet": 5,  # 2 convs + 3 dense
    "vgg11_bn": 11,  # 8 convs + 3 dense
    "resnet18": 21,  # stem + 8 blocks x 2 convs + 3 projection shortcuts + dense
    "tf_cnn": 7,  # 4 convs + 3 dense
    "simple_cnn_medium": 6,  # 4 convs + 2 dense
    "resnet32_nobn": 34,  # first conv + 15 blocks x 2 convs + 2 projection shortcuts + dense
    "c1": 5,  # 2 convs + 3 dense
    "resnet20": 22,  # stem + 9 blocks x 2 convs + 2 projection shortcuts + dense
}
MLP_HIDDEN: tuple[int, ...] = (30, 30)  # the mlp's hidden widths unless `hidden` is given


def layer_block_count(name: str, options: dict | None = None) -> int:
    """``len(layer_blocks(model))`` of the model ``name`` with ``options``, without building it (torch-free):
    the mlp has one block per hidden layer plus the output layer."""
    if name == "mlp":
        return len((options or {}).get("hidden", MLP_HIDDEN)) + 1
    return _FIXED_LAYER_BLOCKS[name]

MODEL_OPTIONS: dict[str, tuple[str, ...]] = {name: ("width",) for name in MODEL_NAMES}
MODEL_OPTIONS["resnet32_nobn"] = ("width", "init_scale")
MODEL_OPTIONS["mlp"] = ("width", "activation", "init_sd", "hidden")


def is_factory(model: str) -> bool:
    """Whether a run's ``model`` names an importable factory (``module:function``) rather than a built-in model."""
    return ":" in model


MLP_ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "linear")
