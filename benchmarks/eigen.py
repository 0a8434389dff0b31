"""Section 2: the top-5 Hessian eigenvalues at equal accuracy, against a converged float64 reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from benchmarks import peers
from benchmarks.fixtures import hessian_batches, num_params
from benchmarks.linearized import LinearizedHessian
from benchmarks.measure import timed
from benchmarks.peers import EigenRun
from benchmarks.report import Section, Target, fmt, fmt_values, table
from benchmarks.sizes import Sizes
from hessian_spectra.curvature import CurvatureOperator, Operator, lanczos

K = 5

ENGINE = "this engine"
ENGINE_BLOCK = "this engine, 8 coupled starts"
ENGINE_FORWARD = "this engine, forward-over-reverse (old default)"
PROTOTYPE = "prototype: linearized products"
PROTOTYPE_BLOCK = "prototype: linearized products, 8 coupled starts"
PYHESSIAN = "PyHessian 0.1"
CURVLINOPS = "curvlinops 3 + scipy eigsh"
EIGENTHINGS_DEFAULT = "hessian-eigenthings, default steps"
EIGENTHINGS_ACCURATE = "hessian-eigenthings, accurate steps"
SPEEDUP_TARGETS = {PYHESSIAN: 6.0, CURVLINOPS: 3.0, EIGENTHINGS_ACCURATE: 1.5}  # the engine's, at equal accuracy


def _engine(op: Operator, tol: float, num_starts: int = 1) -> EigenRun:
    result = lanczos(op, k=K, which="LA", tol=tol, num_starts=num_starts, eigenvectors=True, seed=0)
    return EigenRun(result.eigenvalues, result.eigenvectors, result.products)


def relative_error(values: np.ndarray, reference: np.ndarray) -> float:
    """Largest relative error of the values sorted from the largest, against the reference's top values."""
    ordered = np.sort(np.asarray(values, dtype=float))[::-1]
    return float(np.max(np.abs(ordered - reference) / np.abs(reference)))


def relative_residuals(run: EigenRun, exact: Operator) -> np.ndarray:
    """||H u - theta u|| / |theta| of every returned pair, with the float64 operator (unit-norm u)."""
    U = run.vectors.to(device=exact.device, dtype=torch.float64)
    U = U / U.norm(dim=0, keepdim=True)
    theta = torch.as_tensor(np.asarray(run.eigenvalues, dtype=float), device=exact.device)
    return ((exact.matmat(U) - U * theta).norm(dim=0) / theta.abs()).cpu().numpy()


def _accurate_steps(model: nn.Module, batches, reference: np.ndarray, sizes: Sizes) -> tuple[int | None, int]:
    """Smallest step count at which hessian-eigenthings' top-5 is within ``eigen_tol``; and the search's products."""
    values, search_products = peers.eigenthings_prefix_values(model, batches, K, sizes.eigenthings_max_steps)
    for steps in sorted(values):
        if relative_error(values[steps], reference) <= sizes.eigen_tol:
            return steps, search_products
    return None, search_products


def _model_section(name: str, model: nn.Module, sizes: Sizes, device: torch.device, section: Section) -> None:
    batches = hessian_batches(sizes.samples, sizes.batch_size, device)
    exact = CurvatureOperator(model, batches, dtype=torch.float64)
    ref_seconds, ref = timed(
        lambda: lanczos(
            exact,
            k=K,
            which="LA",
            tol=sizes.reference_tol,
            max_steps=sizes.reference_max_steps,
            explicit_residuals=True,
            seed=1,
        ),
        device,
    )
    reference = np.asarray(ref.eigenvalues, dtype=float)
    ref_residuals = ref.residuals / np.abs(reference)
    reference_ok = bool(np.all(ref_residuals <= sizes.reference_tol))

    tol = sizes.eigen_tol
    steps, search_products = _accurate_steps(model, batches, reference, sizes)
    traced: list[LinearizedHessian] = []  # built by the first prototype row, reused by the second

    def prototype(num_starts: int) -> EigenRun:
        if not traced:
            traced.append(LinearizedHessian(model, batches))
        return _engine(traced[0], tol, num_starts)

    methods: dict[str, tuple[str, Callable[[], EigenRun]]] = {
        ENGINE: (
            f"float32 cached products (the default), `lanczos(k=5, tol={tol:g})`",
            lambda: _engine(CurvatureOperator(model, batches), tol),
        ),
        ENGINE_BLOCK: (
            "as above, `num_starts=8` (block Lanczos, 8 probes per data pass)",
            lambda: _engine(CurvatureOperator(model, batches), tol, num_starts=8),
        ),
        ENGINE_FORWARD: (
            "as the first, `mode='forward'`",
            lambda: _engine(CurvatureOperator(model, batches, mode="forward"), tol),
        ),
        PROTOTYPE: ("benchmarks/linearized.py + the engine's `lanczos`, tracing included", lambda: prototype(1)),
        PROTOTYPE_BLOCK: (
            "as above with `num_starts=8`, reusing the traced operator (tracing not included)",
            lambda: prototype(8),
        ),
        PYHESSIAN: (
            "`hessian(...).eigenvalues(top_n=5)`, defaults (maxIter 100, tol 1e-3)",
            lambda: peers.pyhessian_top(model, batches, device, K),
        ),
        CURVLINOPS: (
            f"`HessianLinearOperator(...).to_scipy()`, `eigsh(k=5, which='LA', tol={tol:g})`",
            lambda: peers.curvlinops_top(model, batches, K, tol),
        ),
        EIGENTHINGS_DEFAULT: (
            "`HessianOperator`, `lanczos(k=5, which='LA')` (10 steps)",
            lambda: peers.eigenthings_top(model, batches, K, None),
        ),
    }
    if steps is not None:
        methods[EIGENTHINGS_ACCURATE] = (
            f"`lanczos(k=5, which='LA', max_iter={steps})`: the fewest steps within {tol:g} (search not timed)",
            lambda: peers.eigenthings_top(model, batches, K, steps),
        )
    rows = [
        [
            name,
            "float64 reference",
            f"`lanczos(tol={sizes.reference_tol:g})` on a float64 copy",
            f"{ref_seconds:.2f}",
            ref.products,
            "0",
            fmt(float(np.max(ref_residuals))),
            fmt_values(reference),
        ]
    ]
    seconds, errors = {}, {}
    for method, (settings, run_fn) in methods.items():
        torch.manual_seed(0)  # PyHessian and scipy's start vectors
        seconds[method], run = timed(run_fn, device)
        errors[method] = relative_error(run.eigenvalues, reference)
        residuals = relative_residuals(run, exact)
        rows.append(
            [
                name,
                method,
                settings,
                f"{seconds[method]:.2f}",
                run.products,
                fmt(errors[method]),
                fmt(float(np.max(residuals))),
                fmt_values(run.eigenvalues),
            ]
        )

    section.lines += table(
        [
            "model",
            "method",
            "settings",
            "wall s",
            "products",
            "max rel. error",
            "max rel. residual",
            "eigenvalues as returned",
        ],
        rows,
    )
    section.lines.append(
        f"- {name} ({num_params(model):,} parameters): reference {'converged' if reference_ok else 'NOT converged'}"
        f" (largest relative residual {fmt(float(np.max(ref_residuals)))}, wanted <= {sizes.reference_tol:g})."
    )
    if steps is None:
        section.lines.append(
            f"- {name}: hessian-eigenthings did not reach {tol:g} within {sizes.eigenthings_max_steps} steps "
            "(its reorthogonalisation switches off above 50 steps and ghost copies of the top eigenvalue appear)."
        )
    else:
        section.lines.append(
            f"- {name}: finding hessian-eigenthings' step count took {search_products} products "
            "(two prefix runs), not counted above."
        )
    section.lines.append("")

    engine_ok = errors[ENGINE] <= tol
    section.targets.append(Target(f"engine top-5 max relative error ({name})", errors[ENGINE], tol, unit=""))
    for peer, goal in SPEEDUP_TARGETS.items():
        speedup = seconds[peer] / seconds[ENGINE] if peer in seconds and engine_ok else float("nan")
        caveat = "" if peer not in errors or errors[peer] <= tol else f"; the peer's error is {fmt(errors[peer])}"
        section.targets.append(Target(f"top-5 speed-up vs {peer} ({name}{caveat})", speedup, goal, kind="min"))


def eigen_section(models: dict[str, nn.Module], sizes: Sizes, device: torch.device) -> Section:
    """Every method's wall time, products, error against the reference and explicit residuals, per checkpoint."""
    section = Section("2. Top-5 eigenvalues at equal accuracy")
    section.lines += [
        f"Every method sees the same checkpoint, the same {sizes.samples} samples in batches of {sizes.batch_size}, "
        "and the same threads. *max rel. error*: the returned values sorted from the largest against the float64 "
        "reference's top 5. *max rel. residual*: ||H u - theta u|| / |theta| of every returned pair, recomputed "
        "with the float64 operator. Wall time includes building each library's operator (and its determinism "
        "check); *products* counts Hessian-vector products inside the algorithm. PyHessian's deflated power "
        "iteration finds the largest-*magnitude* eigenvalues and is reported as it returns them.",
        "",
    ]
    for name in sizes.eigen_models:
        _model_section(name, models[name], sizes, device, section)
    section.lines += [
        "Peer patches needed on today's PyTorch: none for these calls (PyHessian's `density()` needs "
        "one, see section 3)."
    ]
    return section
