"""Curvature matrices as linear operators: Hessian- or GGN-vector products of the average loss over a dataset.

Algorithms see only ``shape``, ``dtype`` (float64), ``device``, ``segments`` and ``matmat(V)``: they never touch
the model. ``segments`` splits the coordinates into independent diagonal blocks (one for an ordinary operator,
one per layer block for a block-diagonal operator); every algorithm treats each segment as its own problem.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vjp, vmap

log = logging.getLogger(__name__)

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]

CURVATURES = ("hessian", "ggn")
DETERMINISM_SAMPLES = 16  # the check repeats one product on this many samples of the first batch
MODES = ("auto", "forward", "double_backward")


class NondeterminismError(RuntimeError):
    """Two evaluations that must agree did not: curvature products would be meaningless."""


def _grad_of_dot(outputs: Sequence[Tensor], vectors: Sequence[Tensor], inputs: Sequence[Tensor]) -> list[Tensor]:
    """d/d(inputs) of sum_i <outputs_i, vectors_i>; outputs that do not depend on the inputs contribute zero."""
    live = [i for i, out in enumerate(outputs) if out.requires_grad]
    if not live:
        return [torch.zeros_like(x) for x in inputs]
    return list(
        torch.autograd.grad(
            [outputs[i] for i in live],
            inputs,
            [vectors[i] for i in live],
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
    )


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
    """Hessian or generalised Gauss-Newton of the average loss over ``data`` w.r.t. some parameters.

    ``data`` is a list of ``(x, y)`` batches or any re-iterable (a DataLoader); batch b weighs ``n_b / N``.
    ``loss_fn(outputs, y)`` returns the batch mean (default: cross-entropy). ``params`` names a parameter subset
    (default: all trainable parameters). ``blocks`` instead makes a block-diagonal operator: each entry (a
    name or a list of names) is one block, and the product is ``H_bb v_b`` for every block b; all blocks'
    probes share each data pass (every (block, probe) lane is embedded in the blocks' joint tangent space,
    and lanes are vmapped in chunks of at most ``max_lanes``: default 8 on CPU, where larger chunks fall out
    of cache, and 32 on GPUs).

    ``curvature="ggn"`` gives ``J^T (D^2_z L) J``. ``l2`` adds ``l2 * v`` (the Hessian of ``l2/2 ||theta||^2``,
    i.e. SGD ``weight_decay=l2``). Products run in the model's dtype (``dtype=torch.float64`` converts a copy
    of the model and the data) with the model in eval mode, and are accumulated in float64. ``mode`` picks
    forward-over-reverse (``jvp(grad)`` vmapped over probes), autograd double-backward, or ``auto``: forward,
    falling back to double-backward when forward-mode AD or vmap raises. With ``check_determinism`` (default)
    the constructor verifies that two passes see the same first batch and that one product repeats exactly.

    The operator reads the model's parameters at every product, except in converted-dtype mode where the copy
    is a snapshot taken at construction.
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
        mode: str = "auto",
        max_lanes: int | None = None,
        check_determinism: bool = True,
    ) -> None:
        super().__init__()
        if curvature not in CURVATURES:
            raise ValueError(f"curvature must be one of {CURVATURES}, got {curvature!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
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
        self.mode = "forward" if mode == "auto" else mode
        self._may_fall_back = mode == "auto"

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

    # ------------------------------------------------------------------ products on one batch
    def _primals(self, names: Sequence[str]) -> dict[str, Tensor]:
        named = dict(self.model.named_parameters())
        return {name: named[name].detach() for name in names}

    def _split(self, T: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
        """(lanes, n) flat tangents over ``names`` -> {name: (lanes, *shape)}."""
        sizes = [self._shape_of[name].numel() for name in names]
        return {
            name: part.reshape(T.shape[0], *self._shape_of[name])
            for name, part in zip(names, T.split(sizes, dim=1))
        }

    @staticmethod
    def _flat(out: dict[str, Tensor], names: Sequence[str], lanes: int) -> Tensor:
        return torch.cat([out[name].reshape(lanes, -1) for name in names], dim=1)

    def _forward_products(self, x: Tensor, y: Tensor, T: Tensor, names: Sequence[str]) -> Tensor:
        model, loss_fn, primals = self.model, self.loss_fn, self._primals(names)

        def outputs_of(p: dict[str, Tensor]) -> Tensor:
            return functional_call(model, p, (x,))

        if self.curvature == "hessian":
            grad_fn = grad(lambda p: loss_fn(outputs_of(p), y))

            def lane(t: dict[str, Tensor]) -> dict[str, Tensor]:
                return jvp(grad_fn, (primals,), (t,))[1]

        else:
            z, vjp_fn = vjp(outputs_of, primals)
            loss_grad_z = grad(lambda zz: loss_fn(zz, y))

            def lane(t: dict[str, Tensor]) -> dict[str, Tensor]:
                jv = jvp(outputs_of, (primals,), (t,))[1]
                hjv = jvp(loss_grad_z, (z,), (jv,))[1]
                return vjp_fn(hjv)[0]

        tangents = self._split(T, names)
        with torch.no_grad():
            if T.shape[0] == 1:  # one lane: skip vmap's batching rules
                out = {name: t.unsqueeze(0) for name, t in lane({n: t[0] for n, t in tangents.items()}).items()}
            else:
                out = vmap(lane, randomness="different")(tangents)
        return self._flat(out, names, T.shape[0])

    def _double_backward_products(self, x: Tensor, y: Tensor, T: Tensor, names: Sequence[str]) -> Tensor:
        primals = {name: p.clone().requires_grad_(True) for name, p in self._primals(names).items()}
        leaves = list(primals.values())
        tangents = self._split(T, names)
        results = []
        with torch.enable_grad():
            z = functional_call(self.model, primals, (x,))
            if self.curvature == "hessian":
                g = torch.autograd.grad(self.loss_fn(z, y), leaves, create_graph=True, materialize_grads=True)
                for i in range(T.shape[0]):
                    t = [tangents[name][i] for name in names]
                    results.append(_grad_of_dot(g, t, leaves))
            else:
                u = torch.zeros_like(z, requires_grad=True)
                jtu = torch.autograd.grad(z, leaves, u, create_graph=True, materialize_grads=True)
                zd = z.detach().requires_grad_(True)
                gz = torch.autograd.grad(self.loss_fn(zd, y), zd, create_graph=True)[0]
                for i in range(T.shape[0]):
                    t = [tangents[name][i] for name in names]
                    jv = _grad_of_dot(jtu, t, [u])[0]
                    hjv = torch.autograd.grad(gz, zd, jv, retain_graph=True)[0]
                    results.append(torch.autograd.grad(z, leaves, hjv, retain_graph=True, materialize_grads=True))
        return torch.stack([torch.cat([r.reshape(-1) for r in res]) for res in results])

    def _batch_products(self, x: Tensor, y: Tensor, T: Tensor, names: Sequence[str]) -> Tensor:
        """Products of the batch-mean loss's curvature w.r.t. ``names`` with the rows of ``T`` (lanes, n_names)."""
        if self.mode == "double_backward":
            return self._double_backward_products(x, y, T, names)
        try:
            out = self._forward_products(x, y, T, names)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, NotImplementedError, TypeError) as err:
            if not self._may_fall_back:
                raise
            log.warning("forward-mode products failed (%s: %s); using double-backward", type(err).__name__, err)
            self.mode = "double_backward"
            self._may_fall_back = False
            return self._double_backward_products(x, y, T, names)
        self._may_fall_back = False
        return out

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
        with eval_mode(self.model):
            for x, y in self._batches():
                n_b = x.shape[0]
                num_data += n_b
                for (b, probes), T in zip(chunks, tangents):
                    lo, hi = self.segments[b]
                    out = self._batch_products(x, y, T, self._groups[b])
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
            a = self._batch_products(x1, y1, T, self._groups[0]).to(torch.float64)
            b = self._batch_products(x1, y1, T, self._groups[0]).to(torch.float64)
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
