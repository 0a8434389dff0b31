"""Walks over an autograd graph: the functions it holds and the tensors they saved for the backward pass."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from torch import Tensor

_SAVED: dict[type, list[str]] = {}  # per node type, its saved-tensor attributes (``_saved_self``, ...)


def nodes(roots: Iterable[Tensor]) -> Iterator[object]:
    """Every node of the graph that computed ``roots``, each once."""
    seen: set = set()
    stack = [t.grad_fn for t in roots if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        yield node
        stack += [child for child, _ in node.next_functions if child is not None]


def saved_tensors(roots: Iterable[Tensor]) -> Iterator[Tensor]:
    """The tensors the graph of ``roots`` keeps for its backward pass (built-in functions' ``_saved_*`` and custom
    functions' ``saved_tensors``; tensors a custom function stores on ``ctx`` by hand are not seen)."""
    for node in nodes(roots):
        names = _SAVED.setdefault(type(node), [name for name in dir(node) if name.startswith("_saved_")])
        values = [getattr(node, name) for name in names]
        if hasattr(node, "saved_tensors"):
            values.append(node.saved_tensors)
        for value in values:
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(item, Tensor):
                    yield item


def check_twice_differentiable(roots: Iterable[Tensor]) -> None:
    """Raise if the graph of ``roots`` holds a function marked ``@once_differentiable``.

    Such a function's backward leaves an error node that ``torch.autograd.grad(..., inputs)`` skips instead of
    raising (it hangs off a detached copy, not off the inputs), so double-backward would silently drop its
    curvature."""
    if any(node.name() == "torch::autograd::Error" for node in nodes(roots)):
        raise RuntimeError(
            "the model uses a function marked @once_differentiable: double-backward products would silently "
            "miss its second derivative; use mode='forward'"
        )
