"""Section 1: the cost of one Hessian-vector product over N samples, as a multiple of one gradient over them."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.fixtures import hessian_batches
from benchmarks.linearized import LinearizedHessian
from benchmarks.measure import flops, interleaved, median_ratio, memory, timed
from benchmarks.report import Section, Target, megabytes, table
from benchmarks.sizes import Sizes
from hessian_spectra.curvature import CurvatureOperator

SINGLE_TARGET = 2.0
BATCHED_TARGETS = {"lenet": 1.2}  # per probe; other models 1.5
BATCHED_TARGET = 1.5
BATCHED = 8

CACHED = "engine, cached (default)"
CACHED_BATCHED = f"engine, cached, {BATCHED} probes"
FORWARD = "engine, forward-over-reverse (old default)"
FORWARD_BATCHED = f"engine, forward-over-reverse, {BATCHED} probes"


def gradient_fn(model: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> Callable[[], list[Tensor]]:
    """One gradient of the mean cross-entropy over all ``batches`` (eval mode, as the products see the model)."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(x.shape[0] for x, _ in batches)

    def gradient() -> list[Tensor]:
        acc: list[Tensor] | None = None
        for x, y in batches:
            g = torch.autograd.grad(F.cross_entropy(model(x), y) * (x.shape[0] / total), params)
            acc = list(g) if acc is None else [a.add_(b) for a, b in zip(acc, g)]
        return acc

    return gradient


def _model_rows(name: str, model: nn.Module, sizes: Sizes, device: torch.device, section: Section) -> list[list]:
    batches = hessian_batches(sizes.samples, sizes.batch_size, device)
    cached = CurvatureOperator(model, batches)
    forward = CurvatureOperator(model, batches, mode="forward")
    double = CurvatureOperator(model, batches, mode="double_backward")
    built = []  # built once, under the memory profiler (whose per-op cost is small next to tracing's)
    held = memory(lambda: built.append(timed(lambda: LinearizedHessian(model, batches), device)), device)[1]
    setup_seconds, linear = built[0]
    n = cached.shape[0]
    generator = torch.Generator().manual_seed(0)
    one = torch.randn(n, 1, generator=generator, dtype=torch.float64).to(device)
    many = torch.randn(n, BATCHED, generator=generator, dtype=torch.float64).to(device)
    first_seconds = timed(lambda: cached.matmat(one), device)[0]  # builds the graphs
    graphs = _graph_bytes(model, batches, one, device)
    products = {
        "gradient": (gradient_fn(model, batches), 1),
        CACHED: (lambda: cached.matmat(one), 1),
        CACHED_BATCHED: (lambda: cached.matmat(many), BATCHED),
        FORWARD: (lambda: forward.matmat(one), 1),
        FORWARD_BATCHED: (lambda: forward.matmat(many), BATCHED),
        "engine, double-backward": (lambda: double.matmat(one), 1),
        "prototype: linearized": (lambda: linear.matmat(one), 1),
        f"prototype: linearized, {BATCHED} probes": (lambda: linear.matmat(many), BATCHED),
    }
    times = interleaved({label: fn for label, (fn, _) in products.items()}, sizes.product_rounds, device)
    base_flops = flops(products["gradient"][0])
    base_peak = memory(products["gradient"][0], device)[0]
    rows = []
    for label, (fn, probes) in products.items():
        ratio = median_ratio(times, label, "gradient") / probes
        peak = memory(fn, device)[0]
        rows.append(
            [
                name,
                f"{n:,}",
                label,
                probes,
                f"{1000 * statistics.median(times[label]) / probes:.1f}",
                f"{ratio:.2f}",
                f"{flops(fn) / probes / base_flops:.2f}",
                megabytes(peak),
                f"{peak / base_peak:.2f}",
            ]
        )
        if label == CACHED:
            section.targets.append(Target(f"single-probe product / gradient ({name})", ratio, SINGLE_TARGET))
        elif label == CACHED_BATCHED:
            limit = BATCHED_TARGETS.get(name, BATCHED_TARGET)
            section.targets.append(Target(f"{BATCHED} batched probes, per probe / gradient ({name})", ratio, limit))
    gradient_seconds = statistics.median(times["gradient"])
    section.lines += [
        f"- {name}: the cached operator's first product built its {len(cached.cache.sizes)} batch graphs in "
        f"{first_seconds:.2f} s ({first_seconds / gradient_seconds:.1f} gradients, the product included); they hold "
        f"{megabytes(cached.cache.used)} MB by the operator's count, {megabytes(graphs)} MB by the allocator's "
        f"({cached.cache.used / base_peak:.1f}x a gradient's peak; budget {megabytes(cached.cache.budget)} MB).",
        f"- {name}: the prototype's one-off tracing took {setup_seconds:.2f} s "
        f"({setup_seconds / gradient_seconds:.0f} gradients) and holds {megabytes(held)} MB of folded constants.",
    ]
    return rows


def _graph_bytes(model: nn.Module, batches: list[tuple[Tensor, Tensor]], V: Tensor, device: torch.device) -> int:
    """Bytes a fresh cached operator's first product leaves allocated (its graphs), by the allocator's count."""
    op = CurvatureOperator(model, batches, check_determinism=False)
    return memory(lambda: op.matmat(V), device)[1]


def products_section(models: dict[str, nn.Module], sizes: Sizes, device: torch.device) -> Section:
    """Per model: gradient, single-probe and batched products, timed interleaved; FLOPs and peak memory."""
    section = Section("1. Product cost: one Hessian-vector product over N samples vs one gradient")
    rows = []
    for name, model in models.items():
        rows += _model_rows(name, model, sizes, device, section)
    batches = -(-sizes.samples // sizes.batch_size)
    notes = section.lines
    section.lines = [
        f"N = {sizes.samples} digits samples in {batches} batches of {sizes.batch_size}, model in eval mode, "
        f"products in float32 accumulated in float64. Times are medians of {sizes.product_rounds} interleaved "
        "rounds; *vs gradient* is the median of the per-round ratios (per probe for batched rows), so load that "
        "changes during the run cancels. FLOPs are counted by `torch.utils.flop_counter` (matmuls and "
        "convolutions; load-independent). Peak memory is what the call allocates above what was allocated "
        "before it: for the cached rows, the graphs (built by an earlier call) are not in it; their size is "
        "listed below the table.",
        "",
        *table(
            [
                "model",
                "parameters",
                "product",
                "probes per pass",
                "ms per probe",
                "time vs gradient",
                "FLOPs vs gradient",
                "peak MB",
                "peak vs gradient",
            ],
            rows,
        ),
        "*engine, cached* is the default mode: each batch's first-order graph is kept (under the memory budget) "
        "and each product is one backward pass through it, probes batched by `torch.func.vmap` over "
        "`torch.autograd.grad`. *forward-over-reverse* (the previous default) and *double-backward* redo the "
        "primal forward and backward in every product. *prototype: linearized* is benchmarks/linearized.py "
        "(each batch's primal pass traced once with `torch.func.linearize`), not the engine.",
        "",
        *notes,
    ]
    return section
