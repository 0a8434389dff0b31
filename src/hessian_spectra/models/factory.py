"""Models from anywhere: a ``module:function`` factory called with the data's shape and the run's options.

The module is imported with the working directory first on ``sys.path``, so a module beside the config (or on
``PYTHONPATH``) serves both the Snakefile at parse time and every job that rebuilds the model.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


def load_factory(factory: str) -> Callable[..., Any]:
    """The function ``factory`` (``module:function``) names; ``ValueError`` saying what is missing."""
    module_name, _, function = factory.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # any failure of the user's module, not only ImportError
        raise ValueError(f"module {module_name!r} does not import ({type(err).__name__}: {err})") from None
    target = getattr(module, function, None)
    if not callable(target):
        raise ValueError(f"module {module_name!r} ({module.__file__}) has no function {function!r}")
    return target


def build_factory_model(
    factory: str, in_channels: int, image_size: int, num_classes: int, **options: Any
) -> nn.Module:
    """Call the factory with ``in_channels``, ``image_size``, ``num_classes`` and the run's model options."""
    from torch import nn

    model = load_factory(factory)(in_channels=in_channels, image_size=image_size, num_classes=num_classes, **options)
    if not isinstance(model, nn.Module):
        raise ValueError(f"{factory} returned {type(model).__name__}, not a torch.nn.Module")
    return model
