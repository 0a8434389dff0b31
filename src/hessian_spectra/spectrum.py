"""What a study asks of one checkpoint's curvature, as a plain function: ``compute_spectrum`` then ``write_spectrum``.

The table is long-format (one row per block x quantity x index); the npz holds the raw arrays (densities' Ritz
nodes and weights, eigenvalues, eigenvectors). The ``spectrum`` command is a thin wrapper around this module.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hessian_spectra.atomic import atomic_write
from hessian_spectra.checkpoint import load_checkpoint, model_from_checkpoint
from hessian_spectra.curvature import (
    CurvatureOperator,
    SpectralDensity,
    curvature_kind,
    dense_eigh,
    dense_matrix,
    frobenius,
    hutchinson,
    hutchpp,
    lanczos,
    make_batches,
    power_iteration,
    slq,
)
from hessian_spectra.curvature.convergence import converged_within, relative_residual
from hessian_spectra.data.subset import load_subset
from hessian_spectra.tables import FULL, write_rows
from hessian_spectra.walk import file_digest, walk_checkpoints

log = logging.getLogger(__name__)

# ``result_row``'s columns after the epoch. Eigenvalues: residual ||Hv - lambda v||, its relative form, the
# tolerance, ``converged`` (relative residual <= tolerance) and, for power iteration, ``stopped`` (the source's
# relative-change rule). Stochastic estimates (trace, norms, density moments): ``stderr`` over ``probes``.
ROW_COLUMNS = (
    "block",
    "quantity",
    "index",
    "value",
    "stderr",
    "probes",
    "residual",
    "relative_residual",
    "tolerance",
    "converged",
    "stopped",
    "products",
)
COLUMNS = ("epoch", *ROW_COLUMNS)
MAX_DENSE = 20_000  # a dense float64 matrix of 3.2 GB

# Each randomised quantity draws its probes from its own stream of the run's seed, keyed further by the operator
# (full or layer blocks) and the checkpoint's epoch (``compute_spectrum``).
_STREAMS = {"top_k": 1, "smallest_k": 2, "power": 3, "trace": 4, "frobenius": 5, "density": 6}


@dataclass
class SpectrumRequest:
    """The quantities to compute (0 disables one) and on which curvature (a registered name) with which product
    kind (one of that curvature's modes); field names follow the command's flags."""

    top_k: int = 0
    which: str = "LA"
    tol: float = 1e-6
    max_steps: int = 200
    eigenvectors: bool = False
    smallest_k: int = 0
    power_iters: int = 0
    power_tol: float = 1e-2
    trace_probes: int = 0
    trace_method: str = "hutchinson"
    frobenius_probes: int = 0
    density_steps: int = 0
    density_probes: int = 1
    grid_points: int = 1024
    sigma_rel: float = 0.01
    layers: bool = False
    blocks: tuple[str, ...] | None = None  # the layer blocks; None = every Conv2d/Linear weight
    params: str = "all"
    curvature: str = "hessian"
    products: str = "cached"
    l2: float = 0.0
    dtype: str = "float32"
    seed: int = 0
    dense: bool = False
    max_lanes: int | None = None
    loss_fn: Callable | None = None

    def __post_init__(self) -> None:
        if self.which not in ("LA", "SA"):
            raise ValueError(f"which must be LA or SA, got {self.which!r}")
        if self.trace_method not in ("hutchinson", "hutchpp"):
            raise ValueError(f"trace method must be hutchinson or hutchpp, got {self.trace_method!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.trace_method == "hutchpp" and 0 < self.trace_probes < 3:
            raise ValueError("hutchpp needs at least 3 trace probes (products)")
        curvature_kind(self.curvature).product_kind(self.products)


@dataclass
class SpectrumResult:
    """Rows of the long table, the npz arrays, and the algorithms' raw results keyed by (block, quantity)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[tuple[str, str], Any] = field(default_factory=dict)
    densities: dict[str, SpectralDensity] = field(default_factory=dict)
    epoch: int | None = None

    def add(self, block: str, quantity: str, index: int, value: float, **fields: Any) -> None:
        """Append a ``result_row`` (``fields``: its stderr, probes, residual, tolerance, stopped, products)."""
        self.rows.append({"epoch": self.epoch, **result_row(block, quantity, index, value, **fields)})


def result_row(
    block: str,
    quantity: str,
    index: int,
    value: float,
    *,
    stderr: float = math.nan,
    probes: int | None = None,
    residual: float = math.nan,
    tolerance: float = math.nan,
    stopped: bool | None = None,
    products: int = 0,
) -> dict:
    """One row of the long-format result tables (``ROW_COLUMNS``). An eigenvalue (a row with a residual) is
    ``converged`` exactly when its relative residual is within ``tolerance``; other rows leave it empty."""
    relative = relative_residual(value, residual)
    return {
        "block": block,
        "quantity": quantity,
        "index": int(index),
        "value": float(value),
        "stderr": float(stderr),
        "probes": None if probes is None else int(probes),
        "residual": float(residual),
        "relative_residual": relative,
        "tolerance": float(tolerance),
        "converged": None if math.isnan(residual) else converged_within(value, residual, tolerance),
        "stopped": None if stopped is None else bool(stopped),
        "products": int(products),
    }


def stream_seed(seed: int, stream: int, *keys: int | None) -> int:
    """An independent seed per random stream (probes of one estimator), derived from the run's seed and ``keys``
    (e.g. the checkpoint's epoch and the block), so no two quantities or checkpoints share their probes."""
    entropy = [int(seed), int(stream), *(int(key) for key in keys if key is not None)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def resolve_params(model: nn.Module, params: str) -> tuple[str, list[str] | None]:
    """``--params`` -> (block name, parameter names or None for all trainable parameters)."""
    if params == "all":
        return FULL, None
    if params == "last_layer":
        from hessian_spectra.models import layer_blocks

        name = layer_blocks(model)[-1]
        return name, [name]
    names = [name.strip() for name in params.split(",") if name.strip()]
    if not names:
        raise ValueError("--params: give all, last_layer or parameter names")
    return ",".join(names), names


def _eigen_rows(result: SpectrumResult, block: str, quantity: str, values, residuals, tolerance, products) -> None:
    for i, (value, residual) in enumerate(zip(values, residuals), start=1):
        if not math.isnan(value):
            result.add(block, quantity, i, value, residual=residual, tolerance=tolerance, products=products)


def _eigen_arrays(result: SpectrumResult, suffix: str, values, residuals, tolerance: float) -> None:
    """The npz's eigenvalues with their residuals, relative residuals, tolerance and converged flags."""
    result.arrays.update(
        {
            f"eigenvalues{suffix}": values,
            f"residuals{suffix}": residuals,
            f"relative_residuals{suffix}": relative_residual(values, residuals),
            f"converged{suffix}": converged_within(values, residuals, tolerance),
            f"tolerance{suffix}": np.float64(tolerance),
        }
    )


def _log(block: str, quantity: str, text: str, started: float) -> None:
    log.info("%s %s: %s (%.2fs)", block, quantity, text, time.perf_counter() - started)


def _fmt(values, limit: int = 5) -> str:
    shown = ", ".join(f"{v:.6g}" for v in list(values)[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def _lanczos_quantity(result, op, block_names, quantity, k, which, request, seed, keep_vectors):
    started = time.perf_counter()
    res = lanczos(
        op,
        k=k,
        which=which,
        tol=request.tol,
        max_steps=request.max_steps,
        seed=seed,
        eigenvectors=keep_vectors,
    )
    values = np.atleast_2d(res.eigenvalues)
    residuals = np.atleast_2d(res.residuals)
    for b, block in enumerate(block_names):
        _eigen_rows(result, block, quantity, values[b], residuals[b], request.tol, res.products)
        result.raw[(block, quantity)] = res
        found = ~np.isnan(values[b])
        relative = relative_residual(values[b][found], residuals[b][found])
        _log(
            block,
            quantity,
            f"{_fmt(values[b])} max relative residual {np.max(relative):.3g}, "
            f"converged {bool(np.all(relative <= request.tol))} (tol {request.tol:g}), {res.steps} steps",
            started,
        )
    return res


def _densities(result, op, block_names, request, seed) -> None:
    """SLQ densities of every block, with their moments and the trace they imply (n * mean), each with its
    standard error over the probes."""
    started = time.perf_counter()
    densities = slq(
        op,
        num_probes=request.density_probes,
        num_steps=request.density_steps,
        grid_points=request.grid_points,
        sigma_rel=request.sigma_rel,
        seed=seed,
    )
    for block, density in zip(block_names, densities):
        result.densities[block] = density
        mean, mean_stderr = density.moment(1)
        moments = {"density_mean": (mean, mean_stderr), "density_second_moment": density.moment(2),
                   "density_trace": (density.dim * mean, density.dim * mean_stderr)}
        for quantity, (value, stderr) in moments.items():
            result.add(block, quantity, 0, value, stderr=stderr, probes=request.density_probes,
                       products=density.products)
        _log(
            block,
            "density",
            f"mean {density.moment(1)[0]:.6g}, range [{density.nodes.min():.6g}, "
            f"{density.nodes.max():.6g}], {density.steps} steps x {density.nodes.shape[0]} probes",
            started,
        )


def compute_spectrum(
    model: nn.Module, batches: Sequence, request: SpectrumRequest, epoch: int | None = None
) -> SpectrumResult:
    """Compute every quantity ``request`` asks for on the average loss over ``batches`` (a list of (x, y))."""
    result = SpectrumResult(epoch=epoch)
    block, names = resolve_params(model, request.params)
    common = dict(
        loss_fn=request.loss_fn,
        curvature=request.curvature,
        mode=request.products,
        l2=request.l2,
        dtype=getattr(torch, request.dtype),
        max_lanes=request.max_lanes,
    )
    op = CurvatureOperator(model, batches, params=names, **common)
    result.arrays["param_names"] = np.array(op.param_names)

    def seed(stream: str, layers: bool = False) -> int:
        return stream_seed(request.seed, _STREAMS[stream], int(layers), epoch)

    if request.dense:
        if op.shape[0] > MAX_DENSE:
            raise ValueError(f"--dense: {op.shape[0]} parameters is too many for a dense eigh (at most {MAX_DENSE})")
        started = time.perf_counter()
        values, vectors, residuals = (t.cpu().numpy() for t in dense_eigh(dense_matrix(op)))
        n = len(values)
        _eigen_rows(result, block, "eigenvalue", values, residuals, request.tol, n)
        if request.smallest_k:
            k = min(request.smallest_k, n)
            _eigen_rows(result, block, "eigenvalue_smallest", values[::-1][:k], residuals[::-1][:k], request.tol, n)
        _eigen_arrays(result, "", values, residuals, request.tol)
        if request.eigenvectors:
            result.arrays["eigenvectors"] = vectors[:, : request.top_k or n]
        _log(block, "dense eigh", f"{n} eigenvalues, top {_fmt(values)}", started)
    else:
        if request.top_k:
            res = _lanczos_quantity(
                result, op, [block], "eigenvalue", request.top_k, request.which, request, seed("top_k"),
                request.eigenvectors,
            )
            _eigen_arrays(result, "", res.eigenvalues, res.residuals, request.tol)
            if request.eigenvectors:
                result.arrays["eigenvectors"] = res.eigenvectors.cpu().numpy()
        if request.smallest_k:
            res = _lanczos_quantity(
                result, op, [block], "eigenvalue_smallest", request.smallest_k, "SA", request, seed("smallest_k"), False
            )
            _eigen_arrays(result, "_smallest", res.eigenvalues, res.residuals, request.tol)

    if request.power_iters:
        started = time.perf_counter()
        res = power_iteration(op, max_iter=request.power_iters, tol=request.power_tol, seed=seed("power"))
        result.raw[(block, "power_eigenvalue")] = res
        result.add(
            block,
            "power_eigenvalue",
            1,
            res.eigenvalue,
            residual=res.residual,
            tolerance=request.tol,
            stopped=res.stopped,
            products=res.products,
        )
        _log(
            block,
            "power_eigenvalue",
            f"{res.eigenvalue:.6g} relative residual {relative_residual(res.eigenvalue, res.residual):.3g}, "
            f"{res.iterations} iterations (stopping rule {'met' if res.stopped else 'not met'})",
            started,
        )
    for quantity, probes, estimator in (
        ("trace", request.trace_probes, hutchpp if request.trace_method == "hutchpp" else hutchinson),
        ("frobenius", request.frobenius_probes, frobenius),
    ):
        if probes:
            started = time.perf_counter()
            est = estimator(op, probes, seed=seed(quantity))
            result.raw[(block, quantity)] = est
            result.add(block, quantity, 0, est.value, stderr=est.stderr, probes=probes, products=est.products)
            _log(block, quantity, f"{est.value:.6g} +- {est.stderr:.3g}", started)
    if request.density_steps:
        _densities(result, op, [block], request, seed("density"))

    if request.layers and (request.density_steps or request.top_k or request.smallest_k):
        from hessian_spectra.models import layer_blocks

        layer_names = list(request.blocks) if request.blocks else layer_blocks(model)
        op.cache.clear()  # done with the full operator: the layer operator builds its own graphs
        layer_op = CurvatureOperator(model, batches, blocks=layer_names, check_determinism=False, **common)
        if request.top_k:
            _lanczos_quantity(
                result, layer_op, layer_names, "eigenvalue", request.top_k, request.which, request,
                seed("top_k", layers=True), False,
            )
        if request.smallest_k:
            _lanczos_quantity(
                result,
                layer_op,
                layer_names,
                "eigenvalue_smallest",
                request.smallest_k,
                "SA",
                request,
                seed("smallest_k", layers=True),
                False,
            )
        if request.density_steps:
            _densities(result, layer_op, layer_names, request, seed("density", layers=True))

    density_blocks = list(result.densities)
    if density_blocks:
        result.arrays["blocks"] = np.array(density_blocks)
        for i, name in enumerate(density_blocks):
            density = result.densities[name]
            result.arrays.update(
                {
                    f"nodes_{i}": density.nodes,
                    f"weights_{i}": density.weights,
                    f"grid_{i}": density.grid,
                    f"density_{i}": density.density,
                    f"sigma_{i}": np.float64(density.sigma),
                }
            )
    return result


def checkpoint_spectra(
    checkpoints: Sequence[str | Path],
    subset: str | Path,
    request: SpectrumRequest,
    batch_size: int,
    device: torch.device,
    out: str | Path,
) -> None:
    """``compute_spectrum`` at every checkpoint of a run (epoch 0 = init) on its Hessian subset, into one table
    ``out``; a killed job resumes at its first unfinished epoch (``walk_checkpoints``)."""
    x, y, _meta = load_subset(subset)
    batches = make_batches(x.to(device), y.to(device), batch_size)
    state: dict[str, nn.Module] = {}

    def measure(epoch: int, path: Path) -> list[dict]:
        ckpt = load_checkpoint(path)
        if "model" not in state:
            state["model"] = model_from_checkpoint(ckpt, map_location=device)
        else:
            state["model"].load_state_dict(ckpt["state_dict"])
        log.info("epoch %d of %d (%s)", ckpt["epoch"], len(checkpoints) - 1, path)
        return compute_spectrum(state["model"], batches, request, epoch=ckpt["epoch"]).rows

    fields = {**asdict(request), "loss_fn": getattr(request.loss_fn, "__qualname__", None)}
    settings = {"request": fields, "batch_size": batch_size, "subset": file_digest(subset)}
    walk_checkpoints(checkpoints, out, COLUMNS, settings, measure)


def write_spectrum(result: SpectrumResult, table_path: str | Path, npz_path: str | Path | None = None) -> None:
    """Write the table (TSV) and, if asked, the npz, each atomically (npz first: the table marks completion)."""
    if npz_path is not None:

        def write_npz(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **result.arrays)

        atomic_write(npz_path, write_npz)
    write_rows(table_path, COLUMNS, result.rows)
