"""Per-batch graphs kept under a memory budget, and emptied whenever what they were computed from changes.

A graph's size is measured when it is built: the storages of the tensors it holds and of those its autograd
graph saved (found by walking the graph), without those that exist anyway (parameters, buffers, the batch).
Batches are offered in order; one is kept if it fits in what the budget has left, and a batch refused once is
rebuilt (unmeasured) at every later product, so memory stays at most the budget plus one batch's graph. The
default budget is the process's (``set_default_memory_budget``, which the compute commands set from the config's
``memory_budget_mb``), else ``DEFAULT_BUDGET_FRACTION`` of the memory available on the device when the first graph
is offered: free CUDA memory (plus what torch's allocator holds unused), or the system's available memory on the CPU.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

import torch
from torch import Tensor

from hessian_spectra.curvature.graph import saved_tensors

DEFAULT_BUDGET_FRACTION = 0.5
_default_budget: int | None = None

G = TypeVar("G")


def available_memory(device: torch.device) -> int:
    """Bytes a new allocation on ``device`` can use now."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        import psutil  # a dependency of snakemake, and the portable way
    except ImportError:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemAvailable"].split()[0]) * 1024
    return int(psutil.virtual_memory().available)


def set_default_memory_budget(nbytes: int | None) -> None:
    """The budget, in bytes, of every later cache built without one (None: the fraction of available memory)."""
    global _default_budget
    _default_budget = _checked_budget(nbytes)


def _checked_budget(nbytes: int | None) -> int | None:
    if nbytes is not None and nbytes < 0:
        raise ValueError(f"memory_budget must be >= 0 bytes, got {nbytes}")
    return nbytes


def graph_bytes(held: Iterable[Tensor], existing: Iterable[Tensor]) -> int:
    """Bytes of the storages of ``held`` tensors and of what their autograd graph saved, except ``existing``'s."""
    held = list(held)
    storages = (t.untyped_storage() for t in itertools.chain(held, saved_tensors(held)))
    sizes = {storage.data_ptr(): storage.nbytes() for storage in storages}
    shared = {t.untyped_storage().data_ptr() for t in existing}
    return sum(nbytes for ptr, nbytes in sizes.items() if ptr not in shared)


class GraphCache:
    """Graphs by batch index under ``budget`` bytes (None: the process's default budget, see the module)."""

    def __init__(self, budget: int | None, device: torch.device) -> None:
        self.budget, self.device = (_default_budget if budget is None else _checked_budget(budget)), device
        self.sizes: dict[int, int] = {}  # kept batch -> bytes
        self._graphs: dict[int, object] = {}
        self._refused: set[int] = set()
        self._state: Hashable = None

    @property
    def used(self) -> int:
        """Bytes of the graphs kept."""
        return sum(self.sizes.values())

    def clear(self) -> None:
        """Drop every kept graph and forget the refused batches."""
        self.sizes.clear()
        self._graphs.clear()
        self._refused.clear()

    def validate(self, state: Hashable) -> None:
        """Forget every graph unless ``state`` (what the graphs were computed from) is the one they saw."""
        if state != self._state:
            self.clear()
            self._state = state

    def graph(self, index: int, build: Callable[[], G], existing: Callable[[], Iterable[Tensor]]) -> G:
        """Batch ``index``'s kept graph, or a new one from ``build()``, kept if it fits."""
        if index in self._graphs:
            return self._graphs[index]
        if index in self._refused:
            return build()
        if self.budget is None:
            self.budget = int(DEFAULT_BUDGET_FRACTION * available_memory(self.device))
        graph = build()
        nbytes = graph_bytes(graph.held(), existing())
        if self.used + nbytes <= self.budget:
            self._graphs[index], self.sizes[index] = graph, nbytes
        else:
            self._refused.add(index)
        return graph
