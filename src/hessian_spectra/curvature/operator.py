"""Curvature matrices as linear operators: products of the average loss's Hessian, GGN or empirical Fisher (any
curvature of ``registry.py``) with vectors, over a dataset.

Algorithms see only ``shape``, ``dtype`` (float64), ``device``, ``segments`` and ``matmat(V)``: they never touch
the model. ``segments`` splits the coordinates into independent diagonal blocks (one for an ordinary operator,
one per layer block for a block-diagonal operator); every algorithm treats each segment as its own problem.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from hessian_spectra.curvature.cache import GraphCache
from hessian_spectra.curvature.products import Batch, LossFn
from hessian_spectra.curvature.registry import curvature_kind

DETERMINISM_SAMPLES = 16  # the check repeats one product on this many samples of the first batch


class NondeterminismError(RuntimeError):
    """Two evaluations that must agree did not: curvature products would be meaningless."""


class Operator:
    """A symmetric linear map on float64 vectors, applied to several vectors at once.

    Subclasses set ``shape``, ``device``, ``segments`` (tuple of ``(start, stop)``), ``blocks`` (names of the
    segments of a block-diagonal operator, or None) and implement ``_matmat``. ``products`` counts the vectors
    multiplied so far.
    """

    dtype = torch.float64
    shape: tuple[int, int]
    device: torch.device
    segments: tuple[tuple[int, int], ...]
    blocks: list[str] | None = None

    def __init__(self) -> None:
        self.products = 0

    def matmat(self, V: Tensor) -> Tensor:
        """``A @ V`` for ``V`` of shape (n, k), float64; returns (n, k) float64.

        Implementations work lane-major: pass ``X.T`` of a contiguous (k, n) ``X`` to avoid copies.
        """
        if V.ndim != 2 or V.shape[0] != self.shape[1]:
            raise ValueError(f"matmat expects a ({self.shape[1]}, k) matrix, got {tuple(V.shape)}")
        if V.dtype != torch.float64:
            raise ValueError(f"matmat expects float64 vectors, got {V.dtype}")
        self.products += V.shape[1]
        return self._matmat(V)

    def matvec(self, v: Tensor) -> Tensor:
        """``A @ v`` for one vector ``v`` of shape (n,), float64."""
        return self.matmat(v.unsqueeze(1)).squeeze(1)

    def __matmul__(self, other: Tensor) -> Tensor:
        return self.matvec(other) if other.ndim == 1 else self.matmat(other)

    def _matmat(self, V: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class ShiftedOperator(Operator):
    """``A + shift * I``."""

    def __init__(self, a: Operator, shift: float) -> None:
        super().__init__()
        self.a, self.shift = a, float(shift)
        self.shape, self.device, self.segments, self.blocks = a.shape, a.device, a.segments, a.blocks

    def _matmat(self, V: Tensor) -> Tensor:
        return self.a.matmat(V) + self.shift * V


def make_batches(x: Tensor, y: Tensor, batch_size: int) -> list[Batch]:
    """Split a dataset held in memory into consecutive batches (the last one may be smaller)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


@contextmanager
def eval_mode(model: nn.Module):
    """Put every submodule in eval mode; restore each one's own flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def _cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    return nn.functional.cross_entropy(outputs, targets)


class CurvatureOperator(Operator):
    """A curvature matrix (Hessian, generalised Gauss-Newton or empirical Fisher) of the average loss over ``data``
    w.r.t. some parameters.

    ``data`` is a list of ``(x, y)`` batches or any re-iterable (a DataLoader); batch b weighs ``n_b / N``.
    ``loss_fn(outputs, y)`` returns the batch mean (default: cross-entropy). ``params`` names a parameter subset
    (default: all trainable parameters). ``blocks`` instead makes a block-diagonal operator: each entry (a
    name or a list of names) is one block, and the product is ``H_bb v_b`` for every block b; all blocks'
    probes share each data pass (lanes run in chunks of at most ``max_lanes`` (block, probe) pairs: default 8
    on CPU, where larger chunks fall out of cache, and 32 on GPUs).

    ``curvature`` names a registered curvature (``registry.CURVATURES``): ``"hessian"`` (default), ``"ggn"`` gives
    ``J^T (D^2_z L) J``, ``"empirical_fisher"`` the mean of per-sample gradient outer products. ``l2`` adds
    ``l2 * v`` (the Hessian of ``l2/2 ||theta||^2``, i.e. SGD ``weight_decay=l2``). Products run in the model's
    dtype (``dtype=torch.float64`` converts a copy of the model and the data) with the model in eval mode, and are
    accumulated in float64.

    ``mode`` picks one of the curvature's product kinds (``kinds.py``): ``cached`` (the default) keeps each batch's
    first-order autograd graph (the empirical Fisher: its per-sample gradients) and makes every product one backward
    pass through it; ``forward`` (``jvp`` of the gradient, vmapped over probes) and ``double_backward`` redo the
    batch's forward and backward in every product (Hessian and GGN only). The Hessian's and GGN's ``cached`` and
    ``double_backward`` refuse models with ``@once_differentiable`` functions, whose second derivative autograd
    would silently drop.
    Graphs are kept for a list or tuple of batches (a loader is re-read at every product), batch by batch in order
    while they fit in ``memory_budget`` bytes (default: the process's, ``set_default_memory_budget``, else half the
    memory available on the device when the first graph is built; 0 keeps none); the other batches rebuild their
    graph in every product. With ``check_determinism`` (default) the constructor verifies that two passes see the
    same first batch and that one product repeats exactly (from two independently built graphs).

    The operator reads the model's parameters at every product, except in converted-dtype mode where the copy
    is a snapshot taken at construction. Kept graphs are dropped whenever a parameter, a buffer or a batch
    tensor has changed since they were built (a new tensor or an in-place write: its ``_version``), so products
    always see the model as it is; an update that bypasses autograd's version counter (writing to ``.data``
    of a tensor in place) is not seen.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Iterable[Batch],
        *,
        loss_fn: LossFn | None = None,
        curvature: str = "hessian",
        params: Sequence[str] | None = None,
        blocks: Sequence[str | Sequence[str]] | None = None,
        l2: float = 0.0,
        dtype: torch.dtype | None = None,
        mode: str = "cached",
        max_lanes: int | None = None,
        memory_budget: int | None = None,
        check_determinism: bool = True,
    ) -> None:
        super().__init__()
        product_kind = curvature_kind(curvature).product_kind(mode)
        if params is not None and blocks is not None:
            raise ValueError("give either params or blocks, not both")
        model_dtype = next(model.parameters()).dtype
        if dtype is not None and dtype != model_dtype:
            model = copy.deepcopy(model).to(dtype)
        self.model = model
        self.compute_dtype = dtype or model_dtype
        self.device = next(model.parameters()).device
        self.max_lanes = int(max_lanes or (8 if self.device.type == "cpu" else 32))
        self.loss_fn = loss_fn or _cross_entropy
        self.curvature = curvature
        self.l2 = float(l2)

        named = dict(model.named_parameters())
        if blocks is not None:
            groups = [[b] if isinstance(b, str) else list(b) for b in blocks]
            self.blocks = [b if isinstance(b, str) else ",".join(b) for b in blocks]
        else:
            names = list(params) if params is not None else [n for n, p in named.items() if p.requires_grad]
            groups = [names]
        flat = [name for group in groups for name in group]
        unknown = [name for name in flat if name not in named]
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; the model has {', '.join(named)}")
        if len(set(flat)) != len(flat) or not flat:
            raise ValueError("parameter names must be distinct and non-empty")
        self.param_names = flat
        self._groups = groups
        self._shape_of = {name: named[name].shape for name in flat}
        segments, start = [], 0
        for group in groups:
            stop = start + sum(named[name].numel() for name in group)
            segments.append((start, stop))
            start = stop
        self.segments = tuple(segments)
        self.shape = (start, start)

        self.mode = mode
        self._kind = product_kind(model, self.loss_fn, groups, self._shape_of)
        self.cache = GraphCache(memory_budget, self.device)
        if isinstance(data, (list, tuple)):
            self._data: Iterable[Batch] = [self._to_device(batch) for batch in data]
            self._materialised = True
        else:
            self._data = data
            self._materialised = False
        self._chunk_cache: dict[int, list] = {}
        if check_determinism:
            self.check_determinism()

    # ------------------------------------------------------------------ data
    def _to_device(self, batch: Batch) -> Batch:
        x, y = batch
        x = x.to(self.device, non_blocking=True)
        if x.is_floating_point():
            x = x.to(self.compute_dtype)
        return x, y.to(self.device, non_blocking=True)

    def _batches(self) -> Iterable[Batch]:
        if self._materialised:
            return self._data
        return (self._to_device(batch) for batch in self._data)

    # ------------------------------------------------------------------ graphs and products
    def _inputs(self) -> list[Tensor]:
        """Every tensor the products are computed from and that exists besides the graphs."""
        tensors = itertools.chain(self.model.parameters(), self.model.buffers())
        if self._materialised:
            tensors = itertools.chain(tensors, *self._data)
        return list(tensors)

    def _graph(self, index: int, x: Tensor, y: Tensor) -> object:
        """Batch ``index``'s graph: kept from an earlier product, or built (and kept if it fits)."""
        if not (self._kind.keeps_graph and self._materialised):
            return self._kind.prepare(x, y)
        return self.cache.graph(index, lambda: self._kind.prepare(x, y), self._inputs)

    # ------------------------------------------------------------------ lanes
    def _lane_chunks(self, k: int) -> list[tuple[int, Tensor]]:
        """(block, probe indices) chunks of at most ``max_lanes`` lanes, never spanning two blocks.

        A block's products differentiate w.r.t. that block's parameters only, so forward-mode tangents start
        at the block and the backward pass stops there. Cached per k, so that no index tensor is copied to
        the device inside the algorithms' loops."""
        if k not in self._chunk_cache:
            self._chunk_cache[k] = [
                (b, torch.arange(start, min(start + self.max_lanes, k), device=self.device))
                for b in range(len(self.segments))
                for start in range(0, k, self.max_lanes)
            ]
        return self._chunk_cache[k]

    def _matmat(self, V: Tensor) -> Tensor:
        VT = V.T  # lane-major (k, n)
        k = VT.shape[0]
        chunks = self._lane_chunks(k)
        tangents = [VT[probes, lo:hi].to(self.compute_dtype) for b, probes in chunks for lo, hi in [self.segments[b]]]
        result = torch.zeros(k, self.shape[0], dtype=torch.float64, device=self.device)
        num_data = 0
        if self._kind.keeps_graph:
            self.cache.validate(tuple((t.data_ptr(), t._version) for t in self._inputs()))
        with eval_mode(self.model):
            for index, (x, y) in enumerate(self._batches()):
                n_b = x.shape[0]
                num_data += n_b
                graph = self._graph(index, x, y)
                for (b, probes), T in zip(chunks, tangents):
                    out = self._kind.apply(graph, T, b)
                    lo, hi = self.segments[b]
                    result[:, lo:hi].index_add_(0, probes, out.to(torch.float64), alpha=n_b)
        if num_data == 0:
            raise ValueError("the data yielded no samples")
        result /= num_data
        if self.l2:
            result += self.l2 * VT
        return result.T

    # ------------------------------------------------------------------ determinism
    def check_determinism(self) -> None:
        """Refuse data or models whose products are not reproducible (see the class docstring)."""
        first = next(iter(self._data), None)
        second = next(iter(self._data), None)
        if first is None:
            raise ValueError("the data yielded no batches")
        (x1, y1), (x2, y2) = self._to_device(first), self._to_device(second)
        if x1.shape != x2.shape or not torch.equal(x1, x2) or not torch.equal(y1, y2):
            raise NondeterminismError(
                "the data are not deterministic: two passes over the data yield different first batches "
                "(a loader that shuffles or augments randomly); give the curvature operator a fixed list of "
                "batches or a loader without shuffling and augmentation"
            )
        gen = torch.Generator().manual_seed(0)
        lo, hi = self.segments[0]
        T = torch.randn(1, hi - lo, generator=gen, dtype=torch.float64).to(self.device, self.compute_dtype)
        x1, y1 = x1[:DETERMINISM_SAMPLES], y1[:DETERMINISM_SAMPLES]

        with eval_mode(self.model):
            a, b = (self._kind.apply(self._kind.prepare(x1, y1), T, 0).to(torch.float64) for _ in range(2))
        scale, diff = a.norm(), (a - b).norm()
        if not bool(torch.isfinite(scale)):
            raise RuntimeError("the curvature product on the first batch is not finite (inf or NaN in the model?)")
        rtol = torch.finfo(self.compute_dtype).eps ** 0.5
        if bool(diff > rtol * scale):
            raise NondeterminismError(
                f"the model is not deterministic: the same curvature product on the same batch differs between "
                f"two evaluations (relative difference {float(diff / scale):.3g}) even in eval mode; a module "
                "draws randomness regardless of mode (e.g. F.dropout(..., training=True) or a stochastic layer)"
            )
