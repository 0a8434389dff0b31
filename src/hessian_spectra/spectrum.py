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
from hessian_spectra.data.subset import load_subset
from hessian_spectra.tables import FULL, write_rows
from hessian_spectra.walk import file_digest, walk_checkpoints

log = logging.getLogger(__name__)

COLUMNS = ("epoch", "block", "quantity", "index", "value", "stderr", "residual", "converged", "products")
MAX_DENSE = 20_000  # a dense float64 matrix of 3.2 GB

# Each randomised quantity draws its probes from its own stream of the run's seed.
_STREAMS = {"top_k": 1, "smallest_k": 2, "power": 3, "trace": 4, "frobenius": 5, "density": 6}


@dataclass
class SpectrumRequest:
    """The quantities to compute (0 disables one); field names follow the command's flags."""

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


@dataclass
class SpectrumResult:
    """Rows of the long table, the npz arrays, and the algorithms' raw results keyed by (block, quantity)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[tuple[str, str], Any] = field(default_factory=dict)
    densities: dict[str, SpectralDensity] = field(default_factory=dict)
    epoch: int | None = None

    def add(self, block: str, quantity: str, index: int, value: float, **fields: Any) -> None:
        """Append a ``result_row`` (``fields``: its stderr, residual, converged, products) of this epoch."""
        self.rows.append({"epoch": self.epoch, **result_row(block, quantity, index, value, **fields)})


def result_row(
    block: str,
    quantity: str,
    index: int,
    value: float,
    *,
    stderr: float = math.nan,
    residual: float = math.nan,
    converged: bool = True,
    products: int = 0,
) -> dict:
    """One row of the long-format result tables (the columns after the table's own label columns)."""
    return {
        "block": block,
        "quantity": quantity,
        "index": int(index),
        "value": float(value),
        "stderr": float(stderr),
        "residual": float(residual),
        "converged": bool(converged),
        "products": int(products),
    }


def stream_seed(seed: int, stream: int) -> int:
    """An independent seed per random stream (probes of one estimator) derived from the run's seed."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


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


def _eigen_rows(result: SpectrumResult, block: str, quantity: str, values, residuals, converged, products) -> None:
    for i, (value, residual, ok) in enumerate(zip(values, residuals, converged), start=1):
        if not math.isnan(value):
            result.add(block, quantity, i, value, residual=residual, converged=ok, products=products)


def _log(block: str, quantity: str, text: str, started: float) -> None:
    log.info("%s %s: %s (%.2fs)", block, quantity, text, time.perf_counter() - started)


def _fmt(values, limit: int = 5) -> str:
    shown = ", ".join(f"{v:.6g}" for v in list(values)[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def _lanczos_quantity(result, op, block_names, quantity, k, which, request, stream, keep_vectors):
    started = time.perf_counter()
    res = lanczos(
        op,
        k=k,
        which=which,
        tol=request.tol,
        max_steps=request.max_steps,
        seed=stream_seed(request.seed, _STREAMS[stream]),
        eigenvectors=keep_vectors,
    )
    values = np.atleast_2d(res.eigenvalues)
    residuals = np.atleast_2d(res.residuals)
    converged = np.atleast_2d(res.converged)
    for b, block in enumerate(block_names):
        _eigen_rows(result, block, quantity, values[b], residuals[b], converged[b], res.products)
        result.raw[(block, quantity)] = res
        _log(
            block,
            quantity,
            f"{_fmt(values[b])} max residual {np.nanmax(residuals[b]):.3g}, "
            f"converged {bool(converged[b][~np.isnan(values[b])].all())}, {res.steps} steps",
            started,
        )
    return res


def _densities(result, op, block_names, request) -> None:
    started = time.perf_counter()
    densities = slq(
        op,
        num_probes=request.density_probes,
        num_steps=request.density_steps,
        grid_points=request.grid_points,
        sigma_rel=request.sigma_rel,
        seed=stream_seed(request.seed, _STREAMS["density"]),
    )
    for block, density in zip(block_names, densities):
        result.densities[block] = density
        for quantity, power in (("density_mean", 1), ("density_second_moment", 2)):
            value, stderr = density.moment(power)
            result.add(block, quantity, 0, value, stderr=stderr, products=density.products)
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
        l2=request.l2,
        dtype=getattr(torch, request.dtype),
        max_lanes=request.max_lanes,
    )
    op = CurvatureOperator(model, batches, params=names, **common)
    result.arrays["param_names"] = np.array(op.param_names)

    if request.dense:
        if op.shape[0] > MAX_DENSE:
            raise ValueError(f"--dense: {op.shape[0]} parameters is too many for a dense eigh (at most {MAX_DENSE})")
        started = time.perf_counter()
        values, vectors, residuals = (t.cpu().numpy() for t in dense_eigh(dense_matrix(op)))
        n = len(values)
        _eigen_rows(result, block, "eigenvalue", values, residuals, [True] * n, n)
        if request.smallest_k:
            k = min(request.smallest_k, n)
            _eigen_rows(result, block, "eigenvalue_smallest", values[::-1][:k], residuals[::-1][:k], [True] * k, n)
        result.arrays["eigenvalues"], result.arrays["residuals"] = values, residuals
        if request.eigenvectors:
            result.arrays["eigenvectors"] = vectors[:, : request.top_k or n]
        _log(block, "dense eigh", f"{n} eigenvalues, top {_fmt(values)}", started)
    else:
        if request.top_k:
            res = _lanczos_quantity(
                result, op, [block], "eigenvalue", request.top_k, request.which, request, "top_k", request.eigenvectors
            )
            result.arrays["eigenvalues"], result.arrays["residuals"] = res.eigenvalues, res.residuals
            if request.eigenvectors:
                result.arrays["eigenvectors"] = res.eigenvectors.cpu().numpy()
        if request.smallest_k:
            res = _lanczos_quantity(
                result, op, [block], "eigenvalue_smallest", request.smallest_k, "SA", request, "smallest_k", False
            )
            result.arrays["eigenvalues_smallest"], result.arrays["residuals_smallest"] = res.eigenvalues, res.residuals

    if request.power_iters:
        started = time.perf_counter()
        res = power_iteration(
            op, max_iter=request.power_iters, tol=request.power_tol, seed=stream_seed(request.seed, _STREAMS["power"])
        )
        result.raw[(block, "power_eigenvalue")] = res
        result.add(
            block,
            "power_eigenvalue",
            1,
            res.eigenvalue,
            residual=res.residual,
            converged=res.converged,
            products=res.products,
        )
        _log(
            block,
            "power_eigenvalue",
            f"{res.eigenvalue:.6g} residual {res.residual:.3g}, " f"{res.iterations} iterations",
            started,
        )
    for quantity, probes, estimator in (
        ("trace", request.trace_probes, hutchpp if request.trace_method == "hutchpp" else hutchinson),
        ("frobenius", request.frobenius_probes, frobenius),
    ):
        if probes:
            started = time.perf_counter()
            est = estimator(op, probes, seed=stream_seed(request.seed, _STREAMS[quantity]))
            result.raw[(block, quantity)] = est
            result.add(block, quantity, 0, est.value, stderr=est.stderr, products=est.products)
            _log(block, quantity, f"{est.value:.6g} +- {est.stderr:.3g}", started)
    if request.density_steps:
        _densities(result, op, [block], request)

    if request.layers and (request.density_steps or request.top_k or request.smallest_k):
        from hessian_spectra.models import layer_blocks

        layer_names = list(request.blocks) if request.blocks else layer_blocks(model)
        op.cache.clear()  # done with the full operator: the layer operator builds its own graphs
        layer_op = CurvatureOperator(model, batches, blocks=layer_names, check_determinism=False, **common)
        if request.top_k:
            _lanczos_quantity(
                result, layer_op, layer_names, "eigenvalue", request.top_k, request.which, request, "top_k", False
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
                "smallest_k",
                False,
            )
        if request.density_steps:
            _densities(result, layer_op, layer_names, request)

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
