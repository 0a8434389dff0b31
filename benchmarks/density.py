"""Section 3: spectral densities by stochastic Lanczos quadrature, full Hessian and every layer block."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmarks import peers
from benchmarks.fixtures import hessian_batches
from benchmarks.measure import interleaved, median_ratio, timed
from benchmarks.report import Section, Target, fmt, table
from benchmarks.sizes import Sizes
from hessian_spectra.curvature import CurvatureOperator, slq
from hessian_spectra.models import layer_blocks

OVERHEAD_TARGET = 10.0  # percent


def _top_node(nodes) -> float:
    """The largest Ritz node over all probes (each method's estimate of the largest eigenvalue)."""
    return float(np.nanmax(np.asarray(nodes, dtype=float)))


def _overhead_rows(
    full: CurvatureOperator, layered: CurvatureOperator, sizes: Sizes, device: torch.device, section: Section
) -> tuple[list[list], float, float]:
    """Engine SLQ against bare products, interleaved: table rows and the median SLQ seconds (full, blocks)."""
    steps, probes = sizes.density_steps, sizes.density_probes
    generator = torch.Generator().manual_seed(0)

    def bare(op: CurvatureOperator):
        V = torch.randn(op.shape[0], probes, generator=generator, dtype=torch.float64).to(device)
        return lambda: [op.matmat(V) for _ in range(steps)]

    fns = {
        "slq full": lambda: slq(full, num_probes=probes, num_steps=steps, seed=0),
        "bare full": bare(full),
        "slq blocks": lambda: slq(layered, num_probes=probes, num_steps=steps, seed=0),
        "bare blocks": bare(layered),
    }
    times = interleaved(fns, sizes.density_rounds, device, warm_up=False)  # medians absorb the first round
    rows = []
    for kind, op, label in (
        ("full", full, "full Hessian"),
        ("blocks", layered, f"{len(layered.segments)} layer blocks"),
    ):
        overhead = 100 * (median_ratio(times, f"slq {kind}", f"bare {kind}") - 1)
        rows.append(
            [
                label,
                probes * len(op.segments),
                steps,
                fmt(np.median(times[f"slq {kind}"])),
                fmt(np.median(times[f"bare {kind}"])),
                f"{overhead:.1f}%",
            ]
        )
        section.targets.append(
            Target(f"SLQ overhead over bare products ({label})", overhead, OVERHEAD_TARGET, unit="%")
        )
    return rows, float(np.median(times["slq full"])), float(np.median(times["slq blocks"]))


def density_section(name: str, model: nn.Module, sizes: Sizes, device: torch.device) -> Section:
    """The engine's SLQ against the same products without the algorithm, and against the peers' SLQ."""
    section = Section("3. Spectral density (stochastic Lanczos quadrature)")
    steps, probes = sizes.density_steps, sizes.density_probes
    batches = hessian_batches(sizes.density_samples, sizes.batch_size, device)
    blocks = layer_blocks(model)
    named = dict(model.named_parameters())
    full = CurvatureOperator(model, batches)
    layered = CurvatureOperator(model, batches, blocks=blocks, check_determinism=False)
    overhead_rows, engine_full_s, engine_blocks_s = _overhead_rows(full, layered, sizes, device, section)

    full_density = slq(full, num_probes=probes, num_steps=steps, seed=0)[0]
    block_densities = slq(layered, num_probes=probes, num_steps=steps, seed=0)
    ends = (float(full_density.nodes.min()), float(full_density.nodes.max()))
    rows = [
        [
            "this engine",
            "full",
            fmt(engine_full_s),
            full_density.products,
            fmt(_top_node(full_density.nodes), 6),
            "median of the interleaved rounds above",
        ]
    ]

    torch.manual_seed(0)
    seconds, (result, products) = timed(lambda: peers.eigenthings_density(model, batches, steps, probes), device)
    rows.append(
        [
            "hessian-eigenthings",
            "full",
            fmt(seconds),
            products,
            fmt(_top_node(result.raw_eigenvalues.cpu()), 6),
            "`spectral_density`",
        ]
    )
    torch.manual_seed(0)
    seconds, (_, _, products) = timed(
        lambda: peers.curvlinops_density(model, batches, steps, probes, boundaries=ends), device
    )
    rows.append(
        [
            "curvlinops",
            "full",
            fmt(seconds),
            products,
            "-",
            "`lanczos_approximate_spectrum`, spectrum ends given (the engine's extreme nodes)",
        ]
    )
    torch.manual_seed(0)
    seconds, (_, _, products) = timed(
        lambda: peers.curvlinops_density(model, batches, steps, probes, boundaries=None), device
    )
    rows.append(
        ["curvlinops", "full", fmt(seconds), products, "-", "its defaults: the ends estimated by `eigsh` first"]
    )
    torch.manual_seed(0)
    seconds, attempt = timed(lambda: peers.pyhessian_density(model, batches, device, steps, probes, True), device)
    rows.append(
        [
            "PyHessian 0.1 (patched)",
            "full",
            fmt(seconds),
            attempt.products,
            fmt(_top_node(attempt.nodes), 6) if attempt.error is None else attempt.error,
            "`density(iter, n_v)` with the `torch.eig` shim",
        ]
    )

    rows.append(
        [
            "this engine",
            f"{len(blocks)} blocks",
            fmt(engine_blocks_s),
            block_densities[0].products,
            "-",
            "all blocks' lanes share each data pass",
        ]
    )
    eigenthings_s = curvlinops_s = 0.0
    eigenthings_products = curvlinops_products = 0
    capped = []
    for block, density in zip(blocks, block_densities):
        size = named[block].numel()
        block_steps = min(steps, size)
        if block_steps < steps:
            capped.append(f"{block} ({size})")
        torch.manual_seed(0)
        seconds, (_, products) = timed(
            lambda: peers.eigenthings_density(model, batches, block_steps, probes, block=block), device
        )
        eigenthings_s, eigenthings_products = eigenthings_s + seconds, eigenthings_products + products
        block_ends = (float(density.nodes.min()), float(density.nodes.max()))
        torch.manual_seed(0)
        seconds, (_, _, products) = timed(
            lambda: peers.curvlinops_density(model, batches, block_steps, probes, block_ends, [named[block]]), device
        )
        curvlinops_s, curvlinops_products = curvlinops_s + seconds, curvlinops_products + products
    rows.append(
        [
            "hessian-eigenthings",
            f"{len(blocks)} blocks",
            fmt(eigenthings_s),
            eigenthings_products,
            "-",
            "one operator and one run per block",
        ]
    )
    rows.append(
        [
            "curvlinops",
            f"{len(blocks)} blocks",
            fmt(curvlinops_s),
            curvlinops_products,
            "-",
            "one operator per block, ends given",
        ]
    )

    failure = peers.pyhessian_density(model, batches, device, 2, 1, patched=False)
    section.lines += [
        f"{name}, {sizes.density_samples} samples in batches of {sizes.batch_size}: {steps} Lanczos steps x {probes} "
        f"probes, for the full Hessian and for each of its {len(blocks)} layer blocks ({', '.join(blocks)}).",
        "",
        "The algorithm's own overhead: the engine's `slq` against the same number of bare `matmat` calls on the "
        f"same operator (same lanes per data pass), medians of {sizes.density_rounds} interleaved rounds.",
        "",
        *table(
            ["operator", "lanes per data pass", "data passes", "SLQ s", "bare products s", "overhead"], overhead_rows
        ),
        "Against the peers at the same steps and probes (one run each; *products* counts Hessian-vector "
        "products; *largest node* is the top Ritz value over the probes, where the method returns nodes: each "
        "estimate of the largest eigenvalue, which should agree):",
        "",
        *table(["method", "Hessian", "wall s", "products", "largest node", "how"], rows),
        f"- PyHessian 0.1 `density()` on torch {torch.__version__} without the patch: "
        + (
            f"raises `{failure.error.split('. ')[0]}.` after its {failure.products} products."
            if failure.error
            else f"ran ({failure.products} products)."
        ),
        "- PyHessian has no layer-block densities.",
    ]
    if capped:
        section.lines.append(
            f"- Blocks smaller than {steps} ran the peers with as many steps as the block has "
            f"parameters (hessian-eigenthings refuses more): {', '.join(capped)}."
        )
    return section
